package erpnext

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

func TestSeed(t *testing.T) {
	const n = 2000
	s, _ := newSite(t)
	ctx := context.Background()
	clock := time.Date(2025, 2, 3, 4, 5, 6, 7000, time.UTC)
	s.Now = fixedClock(clock)
	m := "2025-02-03 07:05:06.000007"
	begin := time.Now()
	if err := s.Seed(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("Seed(%d) took %v", n, time.Since(begin).Round(time.Millisecond))

	var wantBarcodes, wantPrices, wantBins, templates, variants int
	for i := 1; i <= n; i++ {
		it, prices, stock := SeedItem(i)
		wantBarcodes += len(it.Barcodes)
		wantPrices += len(prices)
		wantBins += len(stock)
		if it.HasVariants {
			templates++
		}
		if it.VariantOf != "" {
			variants++
		}
	}
	counts := []struct {
		q    string
		want int
	}{
		{"SELECT COUNT(*) FROM `tabItem`", n},
		{"SELECT COUNT(*) FROM `tabItem Barcode`", wantBarcodes},
		{"SELECT COUNT(*) FROM `tabItem Price`", wantPrices},
		{"SELECT COUNT(*) FROM `tabBin`", wantBins},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `has_variants` = 1", templates},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `variant_of` IS NOT NULL", variants},
		{"SELECT COUNT(DISTINCT `item_code`, `warehouse`) FROM `tabBin`", wantBins},
		{"SELECT COUNT(*) FROM `tabBin` WHERE `warehouse` = '" + WarehouseTransit + "'", n / 97},
		{"SELECT COUNT(DISTINCT `price_list`) FROM `tabItem Price`", 3},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `modified` = '" + m + "' AND `creation` = `modified`", n},
		{"SELECT COUNT(*) FROM `tabItem Price` WHERE `modified` = '" + m + "' AND `valid_from` = '2025-02-03'", wantPrices},
		{"SELECT COUNT(*) FROM `tabBin` WHERE `modified` = '" + m + "'", wantBins},
		{"SELECT COUNT(*) FROM `tabItem Barcode` b JOIN `tabItem` i ON i.`name` = b.`parent` WHERE b.`modified` = i.`modified`", wantBarcodes},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `image` LIKE 'https://%'", n / 20},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `image` IS NULL OR `image` = ''", n / 20},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `image` = ''", n / 40},
		{"SELECT COUNT(*) FROM `tabItem` WHERE `name` NOT REGEXP '^ITEM-[0-9]{5}$'", 0},
		{"SELECT COUNT(*) FROM `tabItem Price` WHERE `name` NOT REGEXP '^[0-9a-f]{10}$'", 0},
		{"SELECT COUNT(*) FROM `tabBin` WHERE `name` NOT REGEXP '^[0-9a-f]{10}$'", 0},
	}
	for _, c := range counts {
		if got := count(t, s.DB, c.q); got != c.want {
			t.Errorf("%s = %d, want %d", c.q, got, c.want)
		}
	}
	if wantBarcodes < n/2 || wantPrices < 2*n || wantBins < 2*n*9/10 {
		t.Errorf("sample too thin: %d barcodes, %d prices, %d bins", wantBarcodes, wantPrices, wantBins)
	}

	// Exact decimals come back as the same text.
	pinned := []struct{ code, list, want string }{
		{"ITEM-00001", PriceListSelling, "0.100000000"},
		{"ITEM-00002", PriceListSelling, "1234567.891000000"},
		{"ITEM-00003", PriceListSelling, "99999999999.999999999"},
		{"ITEM-00003", PriceListWholesale, "0.000000001"},
		{"ITEM-00003", PriceListBuying, "12.345678901"},
	}
	for _, p := range pinned {
		if got := row(t, s.DB, "SELECT `price_list_rate` FROM `tabItem Price` WHERE `item_code` = ? AND `price_list` = ?", p.code, p.list)[0]; got != p.want {
			t.Errorf("%s %s = %s, want %s", p.code, p.list, got, p.want)
		}
	}

	// Spot checks: the database holds what SeedItem says, text for text.
	for _, i := range []int{1, 2, 3, 7, 10, 15, 60, 61, 97, 101, 777, 1234, n} {
		it, prices, stock := SeedItem(i)
		r := row(t, s.DB, "SELECT `item_name`, `item_group`, `brand`, `stock_uom`, `description`, COALESCE(`image`, ''), `disabled`, `has_variants`, COALESCE(`variant_of`, '') FROM `tabItem` WHERE `name` = ?", it.Code)
		brand := it.Brand
		if brand == "" {
			brand = "<nil>"
		}
		want := []string{it.Name, it.Group, brand, it.StockUOM, it.Description, it.Image, b2s(it.Disabled), b2s(it.HasVariants), it.VariantOf}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("item %d:\n got %q\nwant %q", i, r, want)
		}
		var gotBarcodes []Barcode
		for _, b := range rowsOf(t, s.DB, "SELECT `barcode`, COALESCE(`barcode_type`, ''), COALESCE(`uom`, '') FROM `tabItem Barcode` WHERE `parent` = ? ORDER BY `idx`", it.Code) {
			gotBarcodes = append(gotBarcodes, Barcode{b[0], b[1], b[2]})
		}
		if !reflect.DeepEqual(gotBarcodes, it.Barcodes) {
			t.Errorf("item %d barcodes %v, want %v", i, gotBarcodes, it.Barcodes)
		}
		var gotPrices []Price
		for _, p := range rowsOf(t, s.DB, "SELECT `price_list`, `currency`, `price_list_rate`, `uom` FROM `tabItem Price` WHERE `item_code` = ? ORDER BY FIELD(`price_list`, ?, ?, ?)",
			it.Code, PriceListSelling, PriceListWholesale, PriceListBuying) {
			gotPrices = append(gotPrices, Price{p[0], p[1], p[2], p[3]})
		}
		if !reflect.DeepEqual(gotPrices, prices) {
			t.Errorf("item %d prices %v, want %v", i, gotPrices, prices)
		}
		var gotStock []Stock
		for _, b := range rowsOf(t, s.DB, "SELECT `warehouse`, `actual_qty`, `reserved_qty`, `projected_qty` FROM `tabBin` WHERE `item_code` = ? ORDER BY FIELD(`warehouse`, ?, ?, ?)",
			it.Code, WarehouseStores, WarehouseFinished, WarehouseTransit) {
			gotStock = append(gotStock, Stock{b[0], b[1], b[2], b[3]})
		}
		if !reflect.DeepEqual(gotStock, stock) {
			t.Errorf("item %d stock %v, want %v", i, gotStock, stock)
		}
	}
	// Names with non-ASCII text and markup survive as they are.
	for code, want := range map[string]string{"ITEM-00010": "Café <Deluxe> & Co 10", "ITEM-00013": "Ньютон 13", "ITEM-00015": "日本茶 15", "ITEM-00017": "Party Pack 🎉 17"} {
		if got := row(t, s.DB, "SELECT `item_name` FROM `tabItem` WHERE `name` = ?", code)[0]; got != want {
			t.Errorf("%s item_name %q, want %q", code, got, want)
		}
	}
}

// Seed creates its warehouses as SaveWarehouse does, stamped like the first item, and only those missing.
func TestSeedWarehouses(t *testing.T) {
	ctx := context.Background()
	var want []string
	ref, _ := newSite(t)
	for _, w := range SeedWarehouses() {
		if err := ref.SaveWarehouse(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	cols := "SELECT `name`, `warehouse_name`, `is_group`, COALESCE(`parent_warehouse`, '-'), `company`, `lft`, `rgt`, `old_parent`, `owner` FROM `tabWarehouse` ORDER BY `lft`"
	for _, r := range rowsOf(t, ref.DB, cols) {
		want = append(want, join(r))
	}

	s, _ := newSite(t)
	s.Now = fixedClock(time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC))
	if err := s.Seed(ctx, 3); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rowsOf(t, s.DB, cols) {
		got = append(got, join(r))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("seeded warehouses\n%s\nwant (as SaveWarehouse makes them)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := count(t, s.DB, "SELECT COUNT(*) FROM `tabWarehouse` w JOIN `tabItem` i ON i.`name` = 'ITEM-00001' WHERE w.`creation` = i.`modified` AND w.`modified` = i.`modified`"); n != 4 {
		t.Errorf("%d warehouses stamped like item 1, want 4", n)
	}

	// On a site with other warehouses, only the missing ones are added (SaveWarehouse).
	s2, _ := newSite(t)
	for _, w := range []Warehouse{{Name: "Main - XY", IsGroup: true}, SeedWarehouses()[0], SeedWarehouses()[1]} {
		if err := s2.SaveWarehouse(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.Seed(ctx, 2); err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, r := range rowsOf(t, s2.DB, "SELECT `name`, `lft`, `rgt` FROM `tabWarehouse` ORDER BY `lft`") {
		got = append(got, join(r))
	}
	if w := "Main - XY|1|2," + WarehouseAll + "|3|10," + WarehouseStores + "|4|5," + WarehouseFinished + "|6|7," + WarehouseTransit + "|8|9"; strings.Join(got, ",") != w {
		t.Errorf("warehouses %s\nwant %s", strings.Join(got, ","), w)
	}
}

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Seed writes the same rows (names included) every time for the same n and clock.
func TestSeedDeterministic(t *testing.T) {
	sums := make([]string, 2)
	for k := range sums {
		s, _ := newSite(t)
		s.Now = fixedClock(time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC))
		if err := s.Seed(context.Background(), 700); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, tbl := range []string{"tabItem", "tabItem Barcode", "tabItem Price", "tabBin"} {
			var name, sum string
			if err := s.DB.QueryRow("CHECKSUM TABLE `"+tbl+"` EXTENDED").Scan(&name, &sum); err != nil {
				t.Fatal(err)
			}
			parts = append(parts, tbl+"="+sum)
		}
		sums[k] = strings.Join(parts, " ")
	}
	if sums[0] != sums[1] {
		t.Errorf("two seeds differ:\n%s\n%s", sums[0], sums[1])
	}
	a, _, _ := SeedItem(42)
	b, _, _ := SeedItem(42)
	if !reflect.DeepEqual(a, b) {
		t.Error("SeedItem(42) differs between calls")
	}
}

func TestCheckDigit(t *testing.T) {
	for in, want := range map[string]string{"590123412345": "5901234123457", "03600029145": "036000291452", "400638133393": "4006381333931"} {
		if got := checkDigit(in); got != want {
			t.Errorf("checkDigit(%s) = %s, want %s", in, got, want)
		}
	}
}

// BenchmarkSeed measures Seed on a fresh database per iteration:
//
//	go test -run '^$' -bench Seed -benchtime 1x ./internal/erpnext
func BenchmarkSeed(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				db, err := sql.Open("mysql", mariadbtest.NewDatabase(b))
				if err != nil {
					b.Fatal(err)
				}
				if err := CreateSchema(context.Background(), db, testTZ); err != nil {
					b.Fatal(err)
				}
				s, _ := NewSite(db, testTZ)
				b.StartTimer()
				if err := s.Seed(context.Background(), n); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				db.Close()
			}
			b.ReportMetric(float64(n), "items/op")
		})
	}
}
