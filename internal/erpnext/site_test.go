package erpnext

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var hashName = regexp.MustCompile(`^[0-9a-f]{10}$`)

func itemCode(i int) string { return fmt.Sprintf("ITEM-%05d", i) }

func TestFormatModified(t *testing.T) {
	tests := []struct {
		tz   string
		at   time.Time
		want string
	}{
		{"Asia/Kolkata", time.Date(2024, 3, 1, 0, 0, 0, 123456000, time.UTC), "2024-03-01 05:30:00.123456"},
		{"", time.Date(2024, 3, 1, 0, 0, 0, 123456000, time.UTC), "2024-03-01 05:30:00.123456"}, // Frappe's default zone
		{"America/New_York", time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC), "2024-07-01 08:00:00.000000"},
		{"America/New_York", time.Date(2024, 1, 15, 12, 0, 0, 999, time.UTC), "2024-01-15 07:00:00.000000"}, // ns truncated like Python µs
		{"UTC", time.Date(2024, 12, 31, 23, 59, 59, 999999000, time.FixedZone("x", 3600)), "2024-12-31 22:59:59.999999"},
	}
	for _, tc := range tests {
		s, err := NewSite(nil, tc.tz)
		if err != nil {
			t.Fatal(err)
		}
		s.Now = fixedClock(tc.at)
		if got := s.now(); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.tz, tc.at, got, tc.want)
		}
	}
	if _, err := NewSite(nil, "Nowhere/Town"); err == nil {
		t.Error("NewSite accepted an unknown zone")
	}
}

func TestSaveItem(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.UTC)
	s.Now = fixedClock(t1)
	m1 := "2025-03-04 08:06:07.890123" // Africa/Nairobi = UTC+3

	it := Item{Code: "CAFE-1", Name: "Café <Deluxe> & Co", Group: "Beverages", Brand: "Nestlé", StockUOM: "Kg",
		Description: "<p>Rich &amp; dark</p>", Image: "/files/cafe-1.jpg",
		Barcodes: []Barcode{{"5901234123457", "EAN", "Kg"}, {"036000291452", "UPC-A", ""}}}
	if err := s.SaveItem(ctx, it); err != nil {
		t.Fatal(err)
	}
	got := row(t, s.DB, "SELECT `name`, `item_code`, `item_name`, `item_group`, `stock_uom`, `brand`, `description`, `image`, `disabled`, "+
		"`has_variants`, `variant_of`, `creation`, `modified`, `owner`, `modified_by`, `docstatus` FROM `tabItem`")
	want := "CAFE-1|CAFE-1|Café <Deluxe> & Co|Beverages|Kg|Nestlé|<p>Rich &amp; dark</p>|/files/cafe-1.jpg|0|0|<nil>|" + m1 + "|" + m1 + "|Administrator|Administrator|0"
	if join(got) != want {
		t.Errorf("item row\n got %s\nwant %s", join(got), want)
	}
	bcs := rowsOf(t, s.DB, "SELECT `name`, `barcode`, `barcode_type`, `uom`, `idx`, `parent`, `parentfield`, `parenttype`, `creation`, `modified` FROM `tabItem Barcode` ORDER BY `idx`")
	if len(bcs) != 2 {
		t.Fatalf("%d barcodes", len(bcs))
	}
	for i, want := range []string{"5901234123457|EAN|Kg|1|CAFE-1|barcodes|Item|" + m1 + "|" + m1, "036000291452|UPC-A|<nil>|2|CAFE-1|barcodes|Item|" + m1 + "|" + m1} {
		if !hashName.MatchString(bcs[i][0]) || join(bcs[i][1:]) != want {
			t.Errorf("barcode %d = %s, want <hash>|%s", i, join(bcs[i]), want)
		}
	}
	keptName := bcs[1][0]

	if err := s.SetPrice(ctx, "CAFE-1", Price{PriceList: PriceListSelling, Currency: "KES", Rate: "10"}); err != nil {
		t.Fatal(err)
	}

	// Second save, later: new modified on the item and on every barcode row, creation kept.
	t2 := t1.Add(90 * time.Minute)
	m2 := "2025-03-04 09:36:07.890123"
	s.Now = fixedClock(t2)
	it.Name, it.Brand, it.Disabled = "Café Deluxe", "", true
	it.Barcodes = []Barcode{{"036000291452", "UPC-A", "Kg"}, {"4006381333931", "", ""}}
	if err := s.SaveItem(ctx, it); err != nil {
		t.Fatal(err)
	}
	got = row(t, s.DB, "SELECT `item_name`, `brand`, `disabled`, `creation`, `modified` FROM `tabItem` WHERE `name` = 'CAFE-1'")
	if want := "Café Deluxe|<nil>|1|" + m1 + "|" + m2; join(got) != want {
		t.Errorf("after update: %s, want %s", join(got), want)
	}
	bcs = rowsOf(t, s.DB, "SELECT `name`, `barcode`, `barcode_type`, `uom`, `idx`, `creation`, `modified` FROM `tabItem Barcode` ORDER BY `idx`")
	if len(bcs) != 2 {
		t.Fatalf("%d barcodes after update, want 2 (one removed, one kept, one added): %v", len(bcs), bcs)
	}
	if bcs[0][0] != keptName || join(bcs[0][1:]) != "036000291452|UPC-A|Kg|1|"+m1+"|"+m2 {
		t.Errorf("kept barcode = %s (was named %s)", join(bcs[0]), keptName)
	}
	if join(bcs[1][1:]) != "4006381333931|<nil>|<nil>|2|"+m1+"|"+m2 { // new child row: creation = parent's creation
		t.Errorf("new barcode = %s", join(bcs[1]))
	}
	// Item.update_item_price: denormalised fields follow, modified does not.
	price := row(t, s.DB, "SELECT `item_name`, `brand`, `item_description`, `modified` FROM `tabItem Price`")
	if want := "Café Deluxe|<nil>|<p>Rich &amp; dark</p>|" + m1; join(price) != want {
		t.Errorf("price after item save = %s, want %s", join(price), want)
	}

	// Defaults: item_name from the code, description from item_name.
	if err := s.SaveItem(ctx, Item{Code: "PLAIN", Group: "Products", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	if got := join(row(t, s.DB, "SELECT `item_name`, `description`, `image`, `brand` FROM `tabItem` WHERE `name` = 'PLAIN'")); got != "PLAIN|PLAIN|<nil>|<nil>" {
		t.Errorf("defaults: %s", got)
	}
}

func TestSaveItemErrors(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "A", Group: "G", StockUOM: "Nos", Barcodes: []Barcode{{Barcode: "111"}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		it   Item
	}{
		{"no code", Item{Group: "G", StockUOM: "Nos"}},
		{"padded code", Item{Code: " B", Group: "G", StockUOM: "Nos"}},
		{"no group", Item{Code: "B", StockUOM: "Nos"}},
		{"no uom", Item{Code: "B", Group: "G"}},
		{"duplicate barcode", Item{Code: "B", Group: "G", StockUOM: "Nos", Barcodes: []Barcode{{Barcode: "1"}, {Barcode: "1"}}}},
		{"barcode of another item", Item{Code: "B", Group: "G", StockUOM: "Nos", Barcodes: []Barcode{{Barcode: "111"}}}},
		{"missing template", Item{Code: "B", Group: "G", StockUOM: "Nos", VariantOf: "NOPE"}},
		{"own template", Item{Code: "B", Group: "G", StockUOM: "Nos", VariantOf: "B"}},
	}
	for _, tc := range tests {
		if err := s.SaveItem(ctx, tc.it); err == nil {
			t.Errorf("%s: saved", tc.name)
		}
	}
	if n := count(t, s.DB, "SELECT COUNT(*) FROM `tabItem`"); n != 1 { // failed saves rolled back
		t.Errorf("%d items, want 1", n)
	}
}

func TestSetPrice(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "P1", Name: "Ньютон", Group: "G", Brand: "Acme", StockUOM: "Box", Description: "<b>d</b>"}); err != nil {
		t.Fatal(err)
	}
	var created string
	steps := []struct {
		list, rate, uom string
		want            string // price_list_rate as read back
	}{
		{PriceListSelling, "0.1", "", "0.100000000"},
		{PriceListSelling, "1234567.891", "", "1234567.891000000"},
		{PriceListSelling, "99999999999.999999999", "Nos", "99999999999.999999999"},
		{PriceListSelling, "-5", "", "-5.000000000"},
		{PriceListSelling, "19.99", "", "19.990000000"},
		{PriceListBuying, "7.000000001", "", "7.000000001"},
	}
	var firstName string
	for i, st := range steps {
		clockBefore := s.now() // reads the stepping clock: the write gets the next value
		if err := s.SetPrice(ctx, "P1", Price{PriceList: st.list, Currency: "KES", Rate: st.rate, UOM: st.uom}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		rows := rowsOf(t, s.DB, "SELECT `name`, `price_list_rate`, `creation`, `modified`, `uom`, `currency`, `buying`, `selling`, "+
			"`item_name`, `brand`, `item_description`, `valid_from` FROM `tabItem Price` WHERE `item_code` = 'P1' AND `price_list` = ?", st.list)
		if len(rows) != 1 {
			t.Fatalf("step %d: %d rows for %s", i, len(rows), st.list)
		}
		r := rows[0]
		if !hashName.MatchString(r[0]) {
			t.Errorf("name %q is not a 10-digit hash", r[0])
		}
		if r[1] != st.want {
			t.Errorf("step %d: rate %s, want %s", i, r[1], st.want)
		}
		if r[3] <= clockBefore {
			t.Errorf("step %d: modified %s not after %s", i, r[3], clockBefore)
		}
		uom := st.uom
		if uom == "" {
			uom = "Box"
		}
		buying, selling := "0", "1"
		if st.list == PriceListBuying {
			buying, selling = "1", "0"
		}
		if want := uom + "|KES|" + buying + "|" + selling + "|Ньютон|Acme|<b>d</b>|2025-01-02"; join(r[4:]) != want {
			t.Errorf("step %d: %s, want %s", i, join(r[4:]), want)
		}
		if st.list == PriceListSelling {
			if i == 0 {
				firstName, created = r[0], r[2]
				if r[2] != r[3] || !strings.HasPrefix(r[2], "2025-01-02 06:04:05.") {
					t.Errorf("new row creation/modified = %s/%s, want equal clock values", r[2], r[3])
				}
			} else if r[0] != firstName || r[2] != created {
				t.Errorf("step %d: update changed name/creation: %s %s", i, r[0], r[2])
			}
		}
	}

	for _, bad := range []Price{
		{PriceListSelling, "KES", "abc", ""},
		{PriceListSelling, "KES", "1e5", ""},
		{PriceListSelling, "KES", "1234567890123", ""},
		{PriceListSelling, "KES", "1.0000000001", ""},
		{"", "KES", "1", ""},
		{PriceListSelling, "", "1", ""},
	} {
		if err := s.SetPrice(ctx, "P1", bad); err == nil {
			t.Errorf("SetPrice(%+v) accepted", bad)
		}
	}
	if err := s.SetPrice(ctx, "NOPE", Price{PriceListSelling, "KES", "1", ""}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown item: %v", err)
	}
}

func TestSetStock(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "S1", Group: "G", StockUOM: "Kg"}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		st   Stock
		want string // actual|reserved|projected
	}{
		{Stock{WarehouseStores, "10", "", ""}, "10.000000000|0.000000000|10.000000000"},
		{Stock{WarehouseStores, "10", "2.5", ""}, "10.000000000|2.500000000|7.500000000"},
		{Stock{WarehouseStores, "10", "2.5", ""}, "10.000000000|2.500000000|7.500000000"}, // unchanged: modified still bumps
		{Stock{WarehouseStores, "-1.125", "0", "-3"}, "-1.125000000|0.000000000|-3.000000000"},
		{Stock{WarehouseFinished, "0.000000001", "", ""}, "0.000000001|0.000000000|0.000000001"},
	}
	var lastModified, stores string
	for i, st := range steps {
		if err := s.SetStock(ctx, "S1", st.st); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		r := row(t, s.DB, "SELECT `name`, `actual_qty`, `reserved_qty`, `projected_qty`, `stock_uom`, `creation`, `modified` FROM `tabBin` WHERE `item_code` = 'S1' AND `warehouse` = ?", st.st.Warehouse)
		if join(r[1:4]) != st.want || r[4] != "Kg" || !hashName.MatchString(r[0]) {
			t.Errorf("step %d: %s, want <hash>|%s|Kg", i, join(r), st.want)
		}
		if r[6] <= lastModified {
			t.Errorf("step %d: modified %s did not move past %s", i, r[6], lastModified)
		}
		lastModified = r[6]
		if st.st.Warehouse == WarehouseStores {
			if stores == "" {
				stores = r[0]
				if r[5] != r[6] {
					t.Errorf("new Bin: creation %s != modified %s", r[5], r[6])
				}
			} else if r[0] != stores {
				t.Errorf("step %d: Bin renamed %s → %s", i, stores, r[0])
			}
		}
	}
	if n := count(t, s.DB, "SELECT COUNT(*) FROM `tabBin`"); n != 2 {
		t.Errorf("%d Bins, want 2", n)
	}
	if err := s.SetStock(ctx, "NOPE", Stock{Warehouse: WarehouseStores, ActualQty: "1"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown item: %v", err)
	}
	if err := s.SetStock(ctx, "S1", Stock{Warehouse: WarehouseStores, ActualQty: "ten"}); err == nil {
		t.Error("bad quantity accepted")
	}
}

// deletedDocs returns deleted_doctype|deleted_name|creation|modified of every Deleted Document row, sorted.
func deletedDocs(t *testing.T, s *Site) []string {
	var out []string
	for _, r := range rowsOf(t, s.DB, "SELECT `deleted_doctype`, `deleted_name`, `creation`, `modified`, `name` FROM `tabDeleted Document`") {
		if !hashName.MatchString(r[4]) {
			t.Errorf("Deleted Document name %q", r[4])
		}
		out = append(out, join(r[:4]))
	}
	sort.Strings(out)
	return out
}

func deletedData(t *testing.T, s *Site, doctype, name string) (string, map[string]any) {
	t.Helper()
	raw := row(t, s.DB, "SELECT `data` FROM `tabDeleted Document` WHERE `deleted_doctype` = ? AND `deleted_name` = ?", doctype, name)[0]
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("data of %s %s is not JSON: %v\n%s", doctype, name, err, raw)
	}
	return raw, m
}

func TestDeletePrice(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "D1", Group: "G", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	for _, pl := range []string{PriceListSelling, PriceListWholesale} {
		if err := s.SetPrice(ctx, "D1", Price{PriceList: pl, Currency: "KES", Rate: "12.5"}); err != nil {
			t.Fatal(err)
		}
	}
	name := row(t, s.DB, "SELECT `name` FROM `tabItem Price` WHERE `price_list` = ?", PriceListSelling)[0]
	s.Now = fixedClock(time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC))
	if err := s.DeletePrice(ctx, "D1", PriceListSelling); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, s.DB, "SELECT `price_list` FROM `tabItem Price`"); len(got) != 1 || got[0][0] != PriceListWholesale {
		t.Errorf("prices left: %v", got)
	}
	if got, want := deletedDocs(t, s), []string{"Item Price|" + name + "|2025-05-06 10:08:09.000000|2025-05-06 10:08:09.000000"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Deleted Documents %q, want %q", got, want)
	}
	_, data := deletedData(t, s, "Item Price", name)
	for k, want := range map[string]any{"doctype": "Item Price", "name": name, "item_code": "D1", "price_list": PriceListSelling, "price_list_rate": 12.5, "selling": 1.0} {
		if data[k] != want {
			t.Errorf("data[%s] = %v, want %v", k, data[k], want)
		}
	}
	if err := s.DeletePrice(ctx, "D1", PriceListSelling); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestDeleteItem(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	items := []Item{
		{Code: "TPL", Name: "Café Template", Group: "G", StockUOM: "Nos", HasVariants: true, Barcodes: []Barcode{{"1111", "EAN", ""}, {"2222", "", ""}}},
		{Code: "VAR", Group: "G", StockUOM: "Nos", VariantOf: "TPL", Barcodes: []Barcode{{"3333", "", ""}}},
		{Code: "OTHER", Group: "G", StockUOM: "Nos", Barcodes: []Barcode{{"4444", "", ""}}},
	}
	for _, it := range items {
		if err := s.SaveItem(ctx, it); err != nil {
			t.Fatal(err)
		}
		for _, pl := range []string{PriceListSelling, PriceListBuying} {
			if err := s.SetPrice(ctx, it.Code, Price{PriceList: pl, Currency: "KES", Rate: "3"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, wh := range []string{WarehouseStores, WarehouseFinished} {
			if err := s.SetStock(ctx, it.Code, Stock{Warehouse: wh, ActualQty: "4"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Now = fixedClock(time.Date(2025, 6, 1, 0, 0, 0, 500000000, time.UTC))
	if err := s.DeleteItem(ctx, "TPL"); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		q    string
		want int
	}{
		{"SELECT COUNT(*) FROM `tabItem` WHERE `name` IN ('TPL', 'VAR')", 0},
		{"SELECT COUNT(*) FROM `tabItem Barcode` WHERE `parent` IN ('TPL', 'VAR')", 0},
		{"SELECT COUNT(*) FROM `tabItem Price` WHERE `item_code` IN ('TPL', 'VAR')", 0},
		{"SELECT COUNT(*) FROM `tabBin` WHERE `item_code` IN ('TPL', 'VAR')", 0},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `name` = 'OTHER'", 1},
		{"SELECT COUNT(*) FROM `tabItem Barcode` WHERE `parent` = 'OTHER'", 1},
		{"SELECT COUNT(*) FROM `tabItem Price` WHERE `item_code` = 'OTHER'", 2},
		{"SELECT COUNT(*) FROM `tabBin` WHERE `item_code` = 'OTHER'", 2},
		{"SELECT COUNT(*) FROM `tabDeleted Document` WHERE `deleted_doctype` IN ('Bin', 'Item Price', 'Item Barcode')", 0},
	}
	for _, c := range checks {
		if n := count(t, s.DB, c.q); n != c.want {
			t.Errorf("%s = %d, want %d", c.q, n, c.want)
		}
	}
	m := "2025-06-01 03:00:00.500000"
	if got, want := deletedDocs(t, s), []string{"Item|TPL|" + m + "|" + m, "Item|VAR|" + m + "|" + m}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Deleted Documents %q, want %q", got, want)
	}
	raw, data := deletedData(t, s, "Item", "TPL")
	if data["doctype"] != "Item" || data["item_code"] != "TPL" || data["item_name"] != "Café Template" || data["has_variants"] != 1.0 {
		t.Errorf("data = %v", data)
	}
	bcs, _ := data["barcodes"].([]any)
	if len(bcs) != 2 {
		t.Fatalf("data.barcodes = %v", data["barcodes"])
	}
	if b := bcs[0].(map[string]any); b["barcode"] != "1111" || b["doctype"] != "Item Barcode" || b["parent"] != "TPL" || b["idx"] != 1.0 {
		t.Errorf("barcode 0 = %v", b)
	}
	uoms, _ := data["uoms"].([]any) // the stock UOM row every save adds
	if len(uoms) != 1 {
		t.Fatalf("data.uoms = %v", data["uoms"])
	}
	if u := uoms[0].(map[string]any); u["uom"] != "Nos" || u["conversion_factor"] != 1.0 || u["doctype"] != "UOM Conversion Detail" || u["parentfield"] != "uoms" {
		t.Errorf("uom 0 = %v", u)
	}
	// delete_doc → insert_feed: one 'Deleted' Comment per deleted Item, without reference_name.
	feed := rowsOf(t, s.DB, "SELECT `subject`, `reference_doctype`, COALESCE(`reference_name`, '-'), `comment_email`, `creation` FROM `tabComment` "+
		"WHERE `comment_type` = 'Deleted' ORDER BY `subject`")
	if len(feed) != 2 || join(feed[0]) != "Item TPL|Item|-|Administrator|"+m || join(feed[1]) != "Item VAR|Item|-|Administrator|"+m {
		t.Errorf("Deleted comments %v", feed)
	}
	// frappe.as_json: sorted keys, indent 1, ASCII only.
	if !strings.HasPrefix(raw, "{\n \"allow_alternative_item\": 0,\n \"attributes\": [],\n \"barcodes\": [\n  {\n   \"barcode\": \"1111\",\n") {
		t.Errorf("data does not look like frappe.as_json:\n%.200s", raw)
	}
	if !strings.Contains(raw, `"item_name": "Caf\u00e9 Template"`) {
		t.Errorf("data not ensure_ascii encoded:\n%s", raw)
	}
	if err := s.DeleteItem(ctx, "TPL"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestRawPriceUpdate(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "R1", Group: "G", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPrice(ctx, "R1", Price{PriceList: PriceListSelling, Currency: "KES", Rate: "1"}); err != nil {
		t.Fatal(err)
	}
	before := row(t, s.DB, "SELECT `modified`, `modified_by` FROM `tabItem Price`")
	for _, rate := range []string{"2.345", "2.345"} { // the second one changes no row
		if err := s.RawPriceUpdate(ctx, "R1", PriceListSelling, rate); err != nil {
			t.Fatal(err)
		}
	}
	got := row(t, s.DB, "SELECT `price_list_rate`, `modified`, `modified_by` FROM `tabItem Price`")
	if got[0] != "2.345000000" || join(got[1:]) != join(before) {
		t.Errorf("after raw update %s, want 2.345000000|%s", join(got), join(before))
	}
	if err := s.RawPriceUpdate(ctx, "R1", PriceListBuying, "1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing row: %v", err)
	}
}

func TestFrappeJSON(t *testing.T) {
	doc := map[string]any{
		"b": []map[string]any{{"x": int64(1)}},
		"a": "Café <Deluxe> & Co 日😀\x7f\x01/\"\\\n",
		"e": []any{}, "f": map[string]any{}, "n": nil, "t": true,
		"z": 0.1, "big": 99999999999.999999999, "tiny": 0.00001, "whole": 12.0,
	}
	// json.dumps(doc, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=True) in Python 3.11:
	want := `{
 "a": "Caf\u00e9 <Deluxe> & Co \u65e5\ud83d\ude00\u007f\u0001/\"\\\n",
 "b": [
  {
   "x": 1
  }
 ],
 "big": 100000000000.0,
 "e": [],
 "f": {},
 "n": null,
 "t": true,
 "tiny": 1e-05,
 "whole": 12.0,
 "z": 0.1
}`
	if got := frappeJSON(doc); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
