package detector_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// oddColumns are extra tabItem columns of the types that used to stop a
// whole page (added as erp.extra_fields names them).
func oddColumns() []struct{ name, ddl string } {
	return []struct{ name, ddl string }{
		{"custom_ratio", "DOUBLE"},
		{"custom_weight", "FLOAT"},
		{"custom_serial", "BIGINT UNSIGNED"},
		{"custom_count", "BIGINT"},
		{"custom_since", "DATE"},
		{"custom_checked_at", "DATETIME(6)"},
		{"custom_note", "VARCHAR(140)"},
		{"custom_blob", "LONGBLOB"},
	}
}

// oddFixture is a site whose tabItem has oddColumns, sent as extra fields,
// with three ordinary items, and a connection that writes as a site with a
// lax sql_mode does (zero dates, zero months and days, 2024-02-30).
type oddFixture struct {
	*fixture
	neighbours []string          // the ordinary items
	want       map[string]string // their content, built before any odd value was written
}

func newOddFixture(t *testing.T) *oddFixture {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	var extra []string
	for _, c := range oddColumns() {
		if _, err := f.db.ExecContext(ctx, "ALTER TABLE `tabItem` ADD COLUMN `"+c.name+"` "+c.ddl); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, c.name)
	}
	det, err := detector.New(ctx, f.db, detector.Config{ExtraFields: extra})
	if err != nil {
		t.Fatal(err)
	}
	f.det = det
	of := &oddFixture{fixture: f, neighbours: []string{"AAA-1", "MMM-1", "ZZZ-1"}, want: map[string]string{}}
	for i, code := range of.neighbours {
		of.save(t, erpnext.Item{Code: code, Name: "Neighbour " + code, Group: "Products", StockUOM: "Nos",
			Barcodes: []erpnext.Barcode{{Barcode: "BC-" + code}}})
		if err := f.site.SetPrice(ctx, code, erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: fmt.Sprintf("%d.50", 10+i)}); err != nil {
			t.Fatal(err)
		}
		if err := f.site.SetStock(ctx, code, erpnext.Stock{Warehouse: erpnext.WarehouseStores, ActualQty: "4"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.ExecContext(ctx, "UPDATE `tabItem` SET custom_ratio = 0.25, custom_serial = 7, custom_since = '2024-05-01', "+
			"custom_note = 'ok' WHERE name = ?", code); err != nil {
			t.Fatal(err)
		}
	}
	items, err := det.Build(ctx, of.neighbours)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		of.want[it.Code] = string(it.Content.Append(nil))
	}
	return of
}

func (f *oddFixture) save(t *testing.T, it erpnext.Item) {
	t.Helper()
	if err := f.site.SaveItem(context.Background(), it); err != nil {
		t.Fatal(err)
	}
}

// laxExec runs q on a connection whose sql_mode is lax, as on sites where
// MariaDB takes zero dates and impossible days.
func (f *oddFixture) laxExec(t *testing.T, q string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := f.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = DEFAULT"); err != nil {
		t.Fatal(err)
	}
}

// checkNeighbours checks that the ordinary items among items are built as
// they were before any odd value was written.
func (f *oddFixture) checkNeighbours(t *testing.T, items []detector.Item) {
	t.Helper()
	n := 0
	for _, it := range items {
		want, ok := f.want[it.Code]
		if !ok {
			continue
		}
		n++
		if it.Problem != nil || it.Content == nil {
			t.Errorf("neighbour %s: problem %v, content %v", it.Code, it.Problem, it.Content != nil)
		} else if got := string(it.Content.Append(nil)); got != want {
			t.Errorf("neighbour %s changed:\n got %s\nwant %s", it.Code, got, want)
		}
	}
	if n != len(f.want) {
		t.Errorf("%d neighbours built, want %d", n, len(f.want))
	}
}

// One odd value in one item of a page: the page builds, the value is
// encoded exactly (or null where no JSON value of its kind carries it), and
// the other items of the page are as they were.
func TestBuildOddValues(t *testing.T) {
	ctx := context.Background()
	f := newOddFixture(t)
	tests := []struct {
		name   string
		set    string // an UPDATE of the odd item's row(s); ? is its code
		member string
		want   string // the member's canonical JSON
	}{
		// A double reads as strconv's shortest 'g' form ("1e+20").
		{"double 1e20", "UPDATE `tabItem` SET custom_ratio = 1e20 WHERE name = ?", "custom_ratio", `100000000000000000000`},
		{"double 1e21", "UPDATE `tabItem` SET custom_ratio = 1e21 WHERE name = ?", "custom_ratio", `1e+21`},
		{"double -2.5e-7", "UPDATE `tabItem` SET custom_ratio = -2.5e-7 WHERE name = ?", "custom_ratio", `-2.5e-7`},
		{"double a million", "UPDATE `tabItem` SET custom_ratio = 1000000 WHERE name = ?", "custom_ratio", `1000000`},
		{"double with 17 digits", "UPDATE `tabItem` SET custom_ratio = 123456789012345678 WHERE name = ?", "custom_ratio", `123456789012345680`},
		{"double negative zero", "UPDATE `tabItem` SET custom_ratio = -0e0 WHERE name = ?", "custom_ratio", `0`},
		{"float 1.5e-5", "UPDATE `tabItem` SET custom_weight = 1.5e-5 WHERE name = ?", "custom_weight", `0.000015`},
		{"bigint unsigned max", "UPDATE `tabItem` SET custom_serial = 18446744073709551615 WHERE name = ?", "custom_serial", `"18446744073709551615"`},
		{"bigint unsigned above 2^63", "UPDATE `tabItem` SET custom_serial = 9223372036854775808 WHERE name = ?", "custom_serial", `"9223372036854775808"`},
		{"bigint 2^53+1", "UPDATE `tabItem` SET custom_count = 9007199254740993 WHERE name = ?", "custom_count", `"9007199254740993"`},
		{"bigint -2^63", "UPDATE `tabItem` SET custom_count = -9223372036854775808 WHERE name = ?", "custom_count", `"-9223372036854775808"`},
		{"bigint 2^53", "UPDATE `tabItem` SET custom_count = 9007199254740992 WHERE name = ?", "custom_count", `9007199254740992`},
		{"zero date", "UPDATE `tabItem` SET custom_since = '0000-00-00' WHERE name = ?", "custom_since", `null`},
		{"date with a zero month", "UPDATE `tabItem` SET custom_since = '2024-00-10' WHERE name = ?", "custom_since", `null`},
		{"date with a zero day", "UPDATE `tabItem` SET custom_since = '2024-01-00' WHERE name = ?", "custom_since", `null`},
		{"date that is no day", "UPDATE `tabItem` SET custom_since = '2024-02-30' WHERE name = ?", "custom_since", `null`},
		{"end_of_life with a zero month", "UPDATE `tabItem` SET end_of_life = '2024-00-10' WHERE name = ?", "end_of_life", `null`},
		{"zero datetime", "UPDATE `tabItem` SET custom_checked_at = '0000-00-00 00:00:00' WHERE name = ?", "custom_checked_at", `null`},
		{"datetime with a zero day", "UPDATE `tabItem` SET custom_checked_at = '2024-01-00 10:00:00' WHERE name = ?", "custom_checked_at", `null`},
		{"price valid from a zero month", "UPDATE `tabItem Price` SET valid_from = '2024-00-10', valid_upto = '0000-00-00' WHERE item_code = ?", "prices",
			`[{"batch_no":null,"buying":false,"currency":"KES","customer":null,"price_list":"Standard Selling","rate":1.5,"selling":true,"supplier":null,"uom":"Nos","valid_from":null,"valid_upto":null}]`},
		// MariaDB's utf8mb4 takes UTF-16 surrogates (ED A0 80), which are not UTF-8.
		{"text with a surrogate", "UPDATE `tabItem` SET custom_note = CONCAT('caf', 0xEDA080) WHERE name = ?", "custom_note", "\"caf\ufffd\ufffd\ufffd\""},
		{"item_name with a surrogate", "UPDATE `tabItem` SET item_name = CONCAT(0xEDB080, ' lamp') WHERE name = ?", "item_name", "\"\ufffd\ufffd\ufffd lamp\""},
		{"barcode with a surrogate", "UPDATE `tabItem Barcode` SET barcode = CONCAT('BC', 0xEDA080) WHERE parent = ?", "barcodes",
			"[{\"barcode\":\"BC\ufffd\ufffd\ufffd\",\"barcode_type\":null,\"uom\":null}]"},
		{"blob that is not UTF-8", "UPDATE `tabItem` SET custom_blob = 0xFF41C3 WHERE name = ?", "custom_blob", "\"\ufffdA\ufffd\""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code := fmt.Sprintf("ODD-%02d", i)
			f.save(t, erpnext.Item{Code: code, Group: "Products", StockUOM: "Nos", Barcodes: []erpnext.Barcode{{Barcode: "BC-" + code}}})
			if err := f.site.SetPrice(ctx, code, erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "1.5"}); err != nil {
				t.Fatal(err)
			}
			f.laxExec(t, tc.set, code)
			items, err := f.det.Build(ctx, append([]string{code}, f.neighbours...))
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			f.checkNeighbours(t, items)
			for _, it := range items {
				if it.Code != code {
					continue
				}
				if it.Problem != nil {
					t.Fatalf("%s: problem %v", code, it.Problem)
				}
				if got := member(t, it, tc.member); got != tc.want {
					t.Errorf("%s = %s, want %s", tc.member, got, tc.want)
				}
				return
			}
			t.Fatalf("%s was not built: %+v", code, items)
		})
	}
}

// An item whose code is not UTF-8 cannot be sent (its code would change,
// and name no row); it comes back with its problem, and the rest of the page
// is built.
func TestBuildItemWithAProblem(t *testing.T) {
	ctx := context.Background()
	f := newOddFixture(t)
	bad := "LAMP-\xed\xa0\x80"
	f.save(t, erpnext.Item{Code: bad, Group: "Products", StockUOM: "Nos", Barcodes: []erpnext.Barcode{{Barcode: "BC-LAMP"}}})
	if err := f.site.SetPrice(ctx, bad, erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "3"}); err != nil {
		t.Fatal(err)
	}
	for _, codes := range [][]string{
		append([]string{bad}, f.neighbours...),
		{f.neighbours[0], bad, "lamp-\xed\xa0\x80", f.neighbours[2]}, // and another spelling of it
	} {
		items, err := f.det.Build(ctx, codes)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		checkProblem(t, items, bad)
		if len(items) != 4 && len(items) != 3 {
			t.Errorf("%d items for %d codes", len(items), len(codes))
		}
	}
	// The snapshot (and the reconciliation sweep, which reads pages of it)
	// goes on past it.
	items, last, err := f.det.SnapshotPage(ctx, "")
	if err != nil {
		t.Fatalf("SnapshotPage: %v", err)
	}
	if len(items) != 4 || last != "ZZZ-1" {
		t.Errorf("snapshot page: %d items up to %q, want 4 up to ZZZ-1", len(items), last)
	}
	checkProblem(t, items, bad)
}

// checkProblem checks that bad is among items, exactly once, with the
// problem of a code that is not UTF-8.
func checkProblem(t *testing.T, items []detector.Item, bad string) {
	t.Helper()
	n := 0
	for _, it := range items {
		if it.Code != bad {
			if it.Problem != nil || it.Content == nil || it.Deleted {
				t.Errorf("%s: problem %v, content %v, deleted %v", it.Code, it.Problem, it.Content != nil, it.Deleted)
			}
			continue
		}
		n++
		if it.Deleted || it.Content != nil || it.Problem == nil {
			t.Fatalf("%q: deleted %v, content %v, problem %v; want only a problem", it.Code, it.Deleted, it.Content != nil, it.Problem)
		}
		pr := it.Problem
		if pr.Column != "tabItem.name" || pr.Value != `"LAMP-\xed\xa0\x80"` || !strings.Contains(pr.Reason, "not valid UTF-8 (byte 0xed at offset 5)") ||
			!strings.Contains(pr.Reason, "renamed") {
			t.Errorf("problem %#v", pr)
		}
		if want := `tabItem.name "LAMP-\xed\xa0\x80": not valid UTF-8`; !strings.HasPrefix(pr.Error(), want) {
			t.Errorf("Error() = %q, want it to start with %q", pr.Error(), want)
		}
	}
	if n != 1 {
		t.Errorf("%q came back %d times, want once", bad, n)
	}
}

// A poll hands out an item with a problem like any other: the cursor moves
// over its rows and the items changed with it are sent; its next change
// builds it again.
func TestPollMovesOnPastAnItemWithAProblem(t *testing.T) {
	f := newOddFixture(t)
	cursors := f.startCursors(t)
	bad := "LAMP-\xed\xa0\x80"
	f.save(t, erpnext.Item{Code: "AAA-2", Group: "Products", StockUOM: "Nos"})
	f.save(t, erpnext.Item{Code: bad, Group: "Products", StockUOM: "Nos"})
	f.save(t, erpnext.Item{Code: "ZZZ-2", Group: "Products", StockUOM: "Nos"})
	f.laxExec(t, "UPDATE `tabItem` SET custom_ratio = 1e20, custom_serial = 18446744073709551615, custom_since = '0000-00-00' WHERE name = 'ZZZ-2'")
	c, next := f.poll(t, cursors)
	if got := strings.Join(c.codes(), ","); got != "AAA-2,"+bad+",ZZZ-2" {
		t.Fatalf("poll handed out %q", got)
	}
	if it, _ := c.item(bad); it.Problem == nil || it.Problem.Column != "tabItem.name" {
		t.Errorf("%q: problem %v", bad, it.Problem)
	}
	if it, _ := c.item("ZZZ-2"); it.Problem != nil || member(t, it, "custom_ratio") != "100000000000000000000" ||
		member(t, it, "custom_serial") != `"18446744073709551615"` || member(t, it, "custom_since") != "null" {
		t.Errorf("ZZZ-2: problem %v", it.Problem)
	}
	if next[detector.SourceItem] == cursors[detector.SourceItem] {
		t.Errorf("the item cursor did not move: %v", next[detector.SourceItem])
	}
	if c, _ := f.poll(t, next); len(c.codes()) != 0 {
		t.Errorf("the next poll handed out %v again", c.codes())
	}
	// Its next change builds it again.
	f.save(t, erpnext.Item{Code: bad, Name: "changed", Group: "Products", StockUOM: "Nos"})
	c, _ = f.poll(t, next)
	if got := c.codes(); len(got) != 1 || got[0] != bad {
		t.Fatalf("after its change the poll handed out %q", got)
	}
	if it, _ := c.item(bad); it.Problem == nil {
		t.Errorf("%q: no problem", bad)
	}
}
