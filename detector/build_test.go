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
	"github.com/orderweave/erpsync/internal/mariadb"
)

// haveMariaDB reports whether mariadb.RunTests can have had a server: one
// named by $ERPSYNC_TEST_MARIADB_DSN or a mariadbd binary where
// internal/mariadb looks for it.
func haveMariaDB() bool {
	if os.Getenv(mariadb.EnvTestDSN) != "" {
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
	f := newFixture(t, detector.Config{Warehouses: []string{"W1", "W2", "W3"}})
	tests := []struct {
		name string
		bins [][3]string // actual, reserved, projected per warehouse W1, W2, ...
		want string
	}{
		{"no bins", nil, `{"actual_qty":0,"projected_qty":0,"reserved_qty":0}`},
		{"one bin", [][3]string{{"10.500000000", "2.000000000", "8.500000000"}},
			`{"actual_qty":10.5,"projected_qty":8.5,"reserved_qty":2}`},
		{"decimal fractions", [][3]string{{"0.100000000", "0.000000001", "0.100000000"}, {"0.200000000", "0.000000002", "0.200000000"}},
			`{"actual_qty":0.3,"projected_qty":0.3,"reserved_qty":3e-9}`},
		{"negative", [][3]string{{"-5.250000000", "0", "-5.250000000"}, {"2.000000000", "0", "2.000000000"}, {"0.250000000", "0", "-0.000000001"}},
			`{"actual_qty":-3,"projected_qty":-3.250000001,"reserved_qty":0}`},
		{"more digits than a double", [][3]string{{"1234567.891000000", "0", "9999999.999999999"}, {"0.000000001", "0", "0.000000001"}},
			`{"actual_qty":1234567.891000001,"projected_qty":10000000,"reserved_qty":0}`},
		{"beyond 9 integer digits", [][3]string{{"999999999999.999999999", "0", "999999999.999999999"}, {"999999999999.999999999", "0", "999999999.999999999"},
			{"1.000000001", "0", "999999999.999999999"}},
			`{"actual_qty":"2000000000000.999999999","projected_qty":"2999999999.999999997","reserved_qty":0}`},
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
			if got := mustJSON(t, items[0].Fields["stock_total"]); got != tc.want {
				t.Errorf("stock_total = %s, want %s", got, tc.want)
			}
		})
	}
}

// BenchmarkBuild builds pages of 500 sample items (prices, stock, barcodes)
// from a real MariaDB, as the initial sync and a bulk change do.
func BenchmarkBuild(b *testing.B) {
	if !haveMariaDB() {
		b.Skip("no MariaDB server: install mariadb-server or set $" + mariadb.EnvTestDSN)
	}
	const items, page = 2000, 500
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
