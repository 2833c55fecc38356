package signer

import (
	"encoding/json"
	"fmt"
	"testing"
)

// benchItem builds an upsert entry of the size the daemon sends: ~30 fields, prices per price
// list and stock per warehouse.
func benchItem(i int) map[string]any {
	prices := make([]any, 0, 4)
	for _, pl := range []string{"Standard Selling", "Wholesale", "Retail KE", "Online"} {
		prices = append(prices, map[string]any{
			"price_list": pl, "currency": "KES", "rate": json.Number("1999.99"),
			"valid_from": "2024-01-01", "uom": "Nos",
		})
	}
	stock := make([]any, 0, 5)
	for w := range 5 {
		stock = append(stock, map[string]any{
			"warehouse": fmt.Sprintf("Stores %d - LC", w), "actual_qty": json.Number("12.5"),
			"reserved_qty": 0, "projected_qty": 11.5,
		})
	}
	return map[string]any{
		"op": "upsert", "item_code": fmt.Sprintf("SKU-%06d", i), "version": 1000 + i,
		"item_name": "LED Panel Light 600x600 48W Cool White", "item_group": "Lighting",
		"brand": "Lumina", "description": "<p>Slim LED panel, 4000 lm, 6500 K &amp; flicker-free driver.</p>",
		"stock_uom": "Nos", "disabled": false, "is_stock_item": true, "has_variants": false,
		"variant_of": nil, "attributes": []any{map[string]any{"attribute": "Colour", "value": "White"}},
		"image":    "https://cdn.example.com/items/led-panel.jpg",
		"images":   []string{"https://cdn.example.com/items/led-panel-1.jpg", "https://cdn.example.com/items/led-panel-2.jpg"},
		"barcodes": []any{map[string]any{"barcode": "6161234567890", "barcode_type": "EAN"}},
		"prices":   prices, "stock": stock, "total_qty": json.Number("62.5"),
		"modified": "2024-05-06T07:08:09.123456+03:00", "creation": "2023-01-02",
		"weight_per_unit": 2.35, "weight_uom": "Kg", "country_of_origin": "China",
		"customs_tariff_number": "9405.42.00", "min_order_qty": 1, "safety_stock": 10,
		"lead_time_days": 14, "warranty_period": "24", "end_of_life": "2099-12-31",
		"sales_uom": "Nos", "item_tax_template": "VAT 16%", "custom_color_temp": "6500K",
		"custom_lumens": 4000,
	}
}

func BenchmarkCanonical(b *testing.B) {
	item := benchItem(1)
	out, err := Canonical(item)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonical(item); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalizeJSON(b *testing.B) {
	data, err := json.Marshal(benchItem(1))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalizeJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	key, err := DecodeSecret(refSecret)
	if err != nil {
		b.Fatal(err)
	}
	items := make([]any, 0, 10)
	for i := range 10 {
		items = append(items, benchItem(i))
	}
	body, err := Canonical(map[string]any{"delivery_id": "d-1", "tenant": "acme", "items": items})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(key, 1700000000, body)
	}
}
