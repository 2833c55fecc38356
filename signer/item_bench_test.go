package signer

import (
	"encoding/json"
	"testing"
)

// itemEntry builds an item entry shaped like the ones the detector reads from ERPNext: the
// tabItem columns, 2 barcodes, 3 prices and 3 warehouses, decimals as json.Number (as
// signer.Decimal gives them), plus op and version.
func itemEntry() map[string]any {
	barcodes := []any{
		map[string]any{"barcode": "6161234567890", "barcode_type": "EAN", "uom": "Nos"},
		map[string]any{"barcode": "616123456789", "barcode_type": "UPC-A", "uom": nil},
	}
	prices := make([]any, 0, 3)
	for _, p := range []struct{ list, rate string }{
		{"Standard Selling", "1999.99"}, {"Wholesale", "1750"}, {"Retail KE", "2100.5"},
	} {
		prices = append(prices, map[string]any{
			"price_list": p.list, "currency": "KES", "rate": json.Number(p.rate), "uom": "Nos",
			"valid_from": "2024-01-01", "valid_upto": nil, "customer": nil, "supplier": nil, "batch_no": nil,
		})
	}
	stock := make([]any, 0, 3)
	for _, w := range []string{"Finished Goods - LC", "Stores - LC", "Transit - LC"} {
		stock = append(stock, map[string]any{
			"warehouse": w, "actual_qty": json.Number("12.5"), "reserved_qty": json.Number("0"),
			"projected_qty": json.Number("11.5"),
		})
	}
	return map[string]any{
		"op":            "upsert",
		"version":       int64(1715000000123456),
		"item_code":     "SKU-000123",
		"item_name":     "LED Panel Light 600x600 48W Cool White",
		"item_group":    "Lighting",
		"brand":         "Lumina",
		"description":   "<div><p>Slim LED panel, 4000 lm, 6500 K &amp; flicker-free driver.</p>\n<p>\"Cool white\"</p></div>",
		"stock_uom":     "Nos",
		"disabled":      false,
		"is_stock_item": true,
		"is_sales_item": true,
		"has_variants":  false,
		"variant_of":    nil,
		"end_of_life":   "2099-12-31",
		"image":         "https://erp.example.com/files/led-panel.jpg",
		"modified":      "2024-05-06T07:08:09.123456+03:00",
		"barcodes":      barcodes,
		"prices":        prices,
		"stock":         stock,
		"stock_total": map[string]any{
			"actual_qty": json.Number("37.5"), "reserved_qty": json.Number("0"), "projected_qty": json.Number("34.5"),
		},
	}
}

// BenchmarkCanonicalItem measures the canonical encoding of one realistic item entry.
func BenchmarkCanonicalItem(b *testing.B) {
	item := itemEntry()
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
