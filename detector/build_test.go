package detector_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// haveMariaDB reports whether mariadbtest.RunTests can have had a server: one
// named by $ERPSYNC_TEST_MARIADB_DSN or a mariadbd binary where
// internal/mariadb looks for it.
func haveMariaDB() bool {
	if os.Getenv(mariadbtest.EnvTestDSN) != "" {
		return true
	}
	if _, err := exec.LookPath("mariadbd"); err == nil {
		return true
	}
	for _, dir := range []string{"/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/mysql/bin"} {
		if fi, err := os.Stat(filepath.Join(dir, "mariadbd")); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// stock_total sums the selected warehouses exactly: while the sum fits a JSON
// number it is one, beyond that it is the exact decimal as a string.
func TestBuildStockTotal(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{Selection: detector.Selection{Warehouses: []string{"W1", "W2", "W3"}}})
	tests := []struct {
		name string
		bins [][3]string // actual, reserved, projected per warehouse W1, W2, ...
		want string
	}{
		{"no bins", nil, `{"actual_qty":0,"available_qty":0,"projected_qty":0,"reserved_qty":0}`},
		{"one bin", [][3]string{{"10.500000000", "2.000000000", "8.500000000"}},
			`{"actual_qty":10.5,"available_qty":8.5,"projected_qty":8.5,"reserved_qty":2}`},
		{"decimal fractions", [][3]string{{"0.100000000", "0.000000001", "0.100000000"}, {"0.200000000", "0.000000002", "0.200000000"}},
			`{"actual_qty":0.3,"available_qty":0.299999997,"projected_qty":0.3,"reserved_qty":3e-9}`},
		{"negative", [][3]string{{"-5.250000000", "0", "-5.250000000"}, {"2.000000000", "0", "2.000000000"}, {"0.250000000", "0", "-0.000000001"}},
			// available_qty: each leaf's actual − reserved, clipped at 0, summed (W1 counts 0).
			`{"actual_qty":-3,"available_qty":2.25,"projected_qty":-3.250000001,"reserved_qty":0}`},
		{"more digits than a double", [][3]string{{"1234567.891000000", "0", "9999999.999999999"}, {"0.000000001", "0", "0.000000001"}},
			`{"actual_qty":1234567.891000001,"available_qty":1234567.891000001,"projected_qty":10000000,"reserved_qty":0}`},
		{"beyond 9 integer digits", [][3]string{{"999999999999.999999999", "0", "999999999.999999999"}, {"999999999999.999999999", "0", "999999999.999999999"},
			{"1.000000001", "0", "999999999.999999999"}},
			`{"actual_qty":"2000000000000.999999999","available_qty":"2000000000000.999999999","projected_qty":"2999999999.999999997","reserved_qty":0}`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code := fmt.Sprintf("TOTAL-%d", i)
			if err := f.site.SaveItem(ctx, erpnext.Item{Code: code, Name: tc.name, Group: "Products", StockUOM: "Nos"}); err != nil {
				t.Fatal(err)
			}
			for j, b := range tc.bins {
				_, err := f.db.ExecContext(ctx, "INSERT INTO `tabBin` (name, item_code, warehouse, actual_qty, reserved_qty, projected_qty, modified) "+
					"VALUES (?, ?, ?, ?, ?, ?, NOW(6))", fmt.Sprintf("%s-W%d", code, j+1), code, fmt.Sprintf("W%d", j+1), b[0], b[1], b[2])
				if err != nil {
					t.Fatal(err)
				}
			}
			items, err := f.det.Build(ctx, []string{code})
			if err != nil {
				t.Fatal(err)
			}
			if got := member(t, items[0], "stock_total"); got != tc.want {
				t.Errorf("stock_total = %s, want %s", got, tc.want)
			}
		})
	}
}

// BenchmarkBuild builds pages of 500 sample items (prices, stock, barcodes)
// from a real MariaDB, as the initial sync does.
func BenchmarkBuild(b *testing.B) { benchmarkBuild(b, 500) }

// BenchmarkBuildPage100 builds pages of 100 sample items, as a bulk change
// does at batch 100: the queries' fixed cost counts more.
func BenchmarkBuildPage100(b *testing.B) { benchmarkBuild(b, 100) }

func benchmarkBuild(b *testing.B, page int) {
	if !haveMariaDB() {
		b.Skip("no MariaDB server: install mariadb-server or set $" + mariadbtest.EnvTestDSN)
	}
	const items = 2000
	ctx := context.Background()
	f := newFixture(b, detector.Config{PageSize: page})
	if err := f.site.Seed(ctx, items); err != nil {
		b.Fatal(err)
	}
	codes := make([]string, items)
	for i := range codes {
		codes[i] = fmt.Sprintf("ITEM-%05d", i+1)
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	n := 0
	for b.Loop() {
		start := (n % (items / page)) * page
		got, err := f.det.Build(ctx, codes[start:start+page])
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != page {
			b.Fatalf("Build returned %d items, want %d", len(got), page)
		}
		n++
	}
	// Wall time includes the server's; the test process's own CPU time is
	// what Build costs the daemon.
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(n*page), "cpu-ns/item")
}

// processCPU is the CPU time (user + system) the test process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Build writes each item's canonical JSON itself. It must give the very bytes
// the map-based builder it replaced gave (kept in build_reference_test.go):
// the outbox stores a hash of each item's content, and different bytes would
// resend the whole catalogue after an upgrade.
func TestBuildMatchesReference(t *testing.T) {
	tests := []struct {
		name string
		cfg  detector.Config
	}{
		{"defaults", detector.Config{}},
		{"filters, site URL, extra fields, small pages", detector.Config{
			Selection:   detector.Selection{PriceLists: []string{"Standard Selling", "Wholesale"}, Warehouses: []string{erpnext.WarehouseStores, "W2"}},
			SiteURL:     "https://erp.example.com/shop/",
			ExtraFields: []string{"standard_rate", "shelf_life_in_days", "has_batch_no", "creation", "naming_series", "weight_per_unit"},
			PageSize:    70,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, tc.cfg)
			const seeded = 600
			if err := f.site.Seed(ctx, seeded); err != nil {
				t.Fatal(err)
			}
			codes := []string{"NO-SUCH-ITEM", "ITEM-00001"} // a missing code, and a duplicate
			for i := 1; i <= seeded; i++ {
				codes = append(codes, fmt.Sprintf("ITEM-%05d", i))
			}
			// Items the sample catalogue does not have: escapes, empty and
			// NULL texts, zero dates, values a double cannot hold, odd images.
			odd := []erpnext.Item{
				{Code: "ODD-ESCAPES", Name: "tab\tquote\"back\\slash\x01", Group: "G\u2028", Brand: "", StockUOM: "Nos",
					Description: "<p>\"quoted\"</p>\n", Image: "files/with space%20.png",
					Barcodes: []erpnext.Barcode{{Barcode: "B2", Type: ""}, {Barcode: "B1", Type: "EAN", UOM: "Box"}}},
				{Code: "ODD-NULLS", Name: "nulls", Group: "Products", StockUOM: "Nos", Image: "http://cdn.example.com/x.png"},
				{Code: "Ünïcødé 🎉", Name: "日本茶", Group: "Products", StockUOM: "Nos", Image: "/files/日本.jpg"},
			}
			for _, it := range odd {
				if err := f.site.SaveItem(ctx, it); err != nil {
					t.Fatal(err)
				}
				codes = append(codes, it.Code)
			}
			for _, p := range []struct{ code, list, rate string }{
				{"ODD-ESCAPES", "Standard Selling", "123456789012.123456789"},
				{"ODD-ESCAPES", "Wholesale", "0.000000001"},
				{"ODD-ESCAPES", "Standard Buying", "-5.500000000"},
				{"Ünïcødé 🎉", "Standard Selling", "99999999999.999999999"},
			} {
				if err := f.site.SetPrice(ctx, p.code, erpnext.Price{PriceList: p.list, Currency: "EUR", Rate: p.rate}); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range []struct{ code string }{{"ODD-ESCAPES"}, {"Ünïcødé 🎉"}} {
				for _, st := range []erpnext.Stock{
					{Warehouse: "W2", ActualQty: "999999999999.999999999", ReservedQty: "0.000000001"},
					{Warehouse: erpnext.WarehouseStores, ActualQty: "1.100000000", ReservedQty: "0.2"},
					{Warehouse: "W10", ActualQty: "-3"},
				} {
					if err := f.site.SetStock(ctx, s.code, st); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, q := range []string{
				"UPDATE `tabItem` SET item_group = NULL, brand = NULL, description = '', end_of_life = NULL, variant_of = '', standard_rate = 0.1, shelf_life_in_days = 30, has_batch_no = 1 WHERE name = 'ODD-NULLS'",
				"UPDATE `tabItem` SET end_of_life = '0000-00-00', weight_per_unit = 123456789012.123456789, naming_series = 'ÜN-.####' WHERE name = 'Ünïcødé 🎉'",
				"UPDATE `tabItem Price` SET valid_upto = '2030-01-31', customer = 'Cust \"A\"', supplier = '', batch_no = NULL WHERE item_code = 'ODD-ESCAPES'",
				"UPDATE `tabItem Price` SET valid_from = NULL, uom = NULL WHERE item_code = 'Ünïcødé 🎉'",
			} {
				if _, err := f.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			got, err := f.det.Build(ctx, codes)
			if err != nil {
				t.Fatal(err)
			}
			want, err := f.det.ReferenceBuild(ctx, codes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Build gave %d items, the reference %d", len(got), len(want))
			}
			deleted := 0
			for i, it := range got {
				var g string
				if it.Deleted {
					deleted++
					if it.Content != nil {
						t.Errorf("deleted item %s has content", it.Code)
					}
				} else {
					g = string(it.Content.Append(nil))
				}
				if g != want[i] {
					t.Errorf("item %s:\n got %s\nwant %s", it.Code, g, want[i])
				}
			}
			if deleted != 1 || len(got) != seeded+len(odd)+1 {
				t.Errorf("%d items, %d deleted; want %d and 1", len(got), deleted, seeded+len(odd)+1)
			}
		})
	}
}
