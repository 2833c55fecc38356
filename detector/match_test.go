package detector_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// caseCatalogue is what a site holds when Item Prices, Bins and barcodes name
// their item in another spelling than tabItem.name, one that the database's
// collation (utf8mb4_unicode_ci) matches with it: another case, no accent,
// trailing spaces.
type caseContent struct {
	rates    []string // price_list_rate of each price, as JSON
	actual   string   // stock_total.actual_qty
	barcodes []string
}

func caseCatalogue() map[string]caseContent {
	return map[string]caseContent{
		"ITEM-001": {rates: []string{"10", "11"}, actual: "12", barcodes: []string{"BC-001", "BC-002"}},
		"CAFÉ-1":   {rates: []string{"20"}, actual: "3"},
		"PAD-1":    {rates: []string{"30"}, actual: "0"},
		"ITEM-002": {rates: []string{"40"}, actual: "4", barcodes: []string{"BC-003"}},
	}
}

// writeCaseCatalogue writes caseCatalogue's items; ERPNext's writes take the
// item code as given and check it against tabItem with the database's
// collation, so the rows keep the spelling they were written with.
func writeCaseCatalogue(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	for _, it := range []erpnext.Item{
		{Code: "ITEM-001", Group: "Products", StockUOM: "Nos", Barcodes: []erpnext.Barcode{{Barcode: "BC-001"}, {Barcode: "BC-002"}}},
		{Code: "CAFÉ-1", Group: "Products", StockUOM: "Nos"},
		{Code: "PAD-1", Group: "Products", StockUOM: "Nos"},
		{Code: "ITEM-002", Group: "Products", StockUOM: "Nos", Barcodes: []erpnext.Barcode{{Barcode: "BC-003"}}},
	} {
		if err := f.site.SaveItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct{ code, list, rate string }{
		{"item-001", "Standard Selling", "10"},
		{"ITEM-001", "Wholesale", "11"},
		{"CAFE-1", "Standard Selling", "20"},
		{"PAD-1 ", "Standard Selling", "30"},
		{"ITEM-002", "Standard Selling", "40"},
	} {
		if err := f.site.SetPrice(ctx, p.code, erpnext.Price{PriceList: p.list, Currency: "KES", Rate: p.rate}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct{ code, warehouse, qty string }{
		{"Item-001", erpnext.WarehouseStores, "5"},
		{"ITEM-001", "W2", "7"},
		{"cafe-1", erpnext.WarehouseStores, "3"},
		{"ITEM-002", erpnext.WarehouseStores, "4"},
	} {
		if err := f.site.SetStock(ctx, s.code, erpnext.Stock{Warehouse: s.warehouse, ActualQty: s.qty}); err != nil {
			t.Fatal(err)
		}
	}
	// A barcode row under another spelling of its parent, as a raw write
	// can leave it.
	execSQL(t, f, "UPDATE `tabItem Barcode` SET parent = 'item-001' WHERE parent = 'ITEM-001' AND barcode = 'BC-002'")
}

// checkCaseContent fails the test unless it carries the prices, stock and
// barcodes caseCatalogue gives its code.
func checkCaseContent(t *testing.T, it detector.Item) {
	t.Helper()
	want, ok := caseCatalogue()[it.Code]
	if !ok {
		t.Fatalf("item %q is not in the catalogue", it.Code)
	}
	if got := member(t, it, "item_code"); got != `"`+it.Code+`"` {
		t.Errorf("item %s: item_code %s", it.Code, got)
	}
	prices := member(t, it, "prices")
	if n := strings.Count(prices, `"price_list"`); n != len(want.rates) {
		t.Errorf("item %s: %d prices, want %d: %s", it.Code, n, len(want.rates), prices)
	}
	for _, r := range want.rates {
		if !strings.Contains(prices, `"rate":`+r+`,`) {
			t.Errorf("item %s: no price of rate %s: %s", it.Code, r, prices)
		}
	}
	if got, w := member(t, it, "stock_total"), `{"actual_qty":`+want.actual+`,`; !strings.HasPrefix(got, w) {
		t.Errorf("item %s: stock_total %s, want actual_qty %s", it.Code, got, want.actual)
	}
	barcodes := member(t, it, "barcodes")
	if n := strings.Count(barcodes, `"barcode":`); n != len(want.barcodes) {
		t.Errorf("item %s: %d barcodes, want %d: %s", it.Code, n, len(want.barcodes), barcodes)
	}
	for _, b := range want.barcodes {
		if !strings.Contains(barcodes, `"barcode":"`+b+`"`) {
			t.Errorf("item %s: no barcode %s: %s", it.Code, b, barcodes)
		}
	}
}

// databaseName is the tabItem name the database matches code with, or ""
// for none.
func databaseName(t *testing.T, f *fixture, code string) string {
	t.Helper()
	var name string
	err := f.db.QueryRowContext(context.Background(), "SELECT name FROM `tabItem` WHERE name = ?", code).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// Build matches item codes as MariaDB does: an item comes back under its
// tabItem name, whatever spelling it was asked by, with every price, Bin and
// barcode whose item code the database matches with that name; a code is
// Deleted only when the database matches it with no item.
func TestBuildMatchesCodesAsTheDatabase(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	writeCaseCatalogue(t, f)
	type built struct {
		code    string
		deleted bool
	}
	tests := []struct {
		name     string
		codes    []string
		pageSize int
		want     []built // in Build's order
	}{
		{"the names", []string{"ITEM-001", "CAFÉ-1", "PAD-1", "ITEM-002"}, 0,
			[]built{{"CAFÉ-1", false}, {"ITEM-001", false}, {"ITEM-002", false}, {"PAD-1", false}}},
		{"another case", []string{"item-001"}, 0, []built{{"ITEM-001", false}}},
		{"three spellings of one item", []string{"Item-001", "item-001", "ITEM-001"}, 0, []built{{"ITEM-001", false}}},
		{"without the accent", []string{"CAFE-1"}, 0, []built{{"CAFÉ-1", false}}},
		{"lower case without the accent", []string{"cafe-1"}, 0, []built{{"CAFÉ-1", false}}},
		{"trailing space", []string{"pad-1 "}, 0, []built{{"PAD-1", false}}},
		{"beside missing codes", []string{"NO-SUCH-ITEM", "item-001", "ITEM-0001"}, 0,
			[]built{{"ITEM-0001", true}, {"NO-SUCH-ITEM", true}, {"ITEM-001", false}}},
		{"spellings of one item on different pages", []string{"ITEM-001", "CAFÉ-1", "PAD-1", "item-001", "cafe-1"}, 2,
			[]built{{"CAFÉ-1", false}, {"ITEM-001", false}, {"PAD-1", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range tc.codes { // the expectations are what the database decides
				name := databaseName(t, f, c)
				if !slices.Contains(tc.want, built{name, false}) && (name != "" || !slices.Contains(tc.want, built{c, true})) {
					t.Fatalf("the database matches %q with %q, which the test does not expect", c, name)
				}
			}
			det := f.det
			if tc.pageSize > 0 {
				var err error
				if det, err = detector.New(ctx, f.db, detector.Config{PageSize: tc.pageSize}); err != nil {
					t.Fatal(err)
				}
			}
			items, err := det.Build(ctx, tc.codes)
			if err != nil {
				t.Fatal(err)
			}
			var got []built
			for _, it := range items {
				got = append(got, built{it.Code, it.Deleted})
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Build(%q) = %v, want %v", tc.codes, got, tc.want)
			}
			for _, it := range items {
				if !it.Deleted {
					checkCaseContent(t, it)
				}
			}
		})
	}
}

// A change that names an item in another spelling re-sends the item under
// its tabItem name, never an item or a delete under the spelling of the change.
func TestPollMatchesCodesAsTheDatabase(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, f *fixture)
		want   string
		rate   string // a rate the item must now carry; "" = no check
	}{
		{"price of item-001 changes", func(t *testing.T, f *fixture) {
			if err := f.site.SetPrice(context.Background(), "item-001", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "12.5"}); err != nil {
				t.Fatal(err)
			}
		}, "ITEM-001", "12.5"},
		{"Bin of Item-001 changes", func(t *testing.T, f *fixture) {
			if err := f.site.SetStock(context.Background(), "Item-001", erpnext.Stock{Warehouse: erpnext.WarehouseStores, ActualQty: "5"}); err != nil {
				t.Fatal(err)
			}
		}, "ITEM-001", ""},
		{"price of item-001 deleted", func(t *testing.T, f *fixture) {
			ctx := context.Background()
			if err := f.site.SetPrice(ctx, "item-001", erpnext.Price{PriceList: "Standard Buying", Currency: "KES", Rate: "1"}); err != nil {
				t.Fatal(err)
			}
			if err := f.site.DeletePrice(ctx, "item-001", "Standard Buying"); err != nil {
				t.Fatal(err)
			}
		}, "ITEM-001", ""},
		{"Item item-001 deleted, then ITEM-001 created", func(t *testing.T, f *fixture) {
			ctx := context.Background()
			execSQL(t, f, "DELETE FROM `tabItem Price` WHERE item_code = 'ITEM-001'")
			execSQL(t, f, "DELETE FROM `tabBin` WHERE item_code = 'ITEM-001'")
			execSQL(t, f, "DELETE FROM `tabItem Barcode` WHERE parent = 'ITEM-001'")
			execSQL(t, f, "DELETE FROM `tabItem` WHERE name = 'ITEM-001'")
			if err := f.site.SaveItem(ctx, erpnext.Item{Code: "item-001", Group: "Products", StockUOM: "Nos"}); err != nil {
				t.Fatal(err)
			}
			if err := f.site.DeleteItem(ctx, "item-001"); err != nil {
				t.Fatal(err)
			}
			if err := f.site.SaveItem(ctx, erpnext.Item{Code: "ITEM-001", Group: "Products", StockUOM: "Nos"}); err != nil {
				t.Fatal(err)
			}
		}, "ITEM-001", ""},
		{"price of CAFE-1 changes", func(t *testing.T, f *fixture) {
			if err := f.site.SetPrice(context.Background(), "CAFE-1", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "21"}); err != nil {
				t.Fatal(err)
			}
		}, "CAFÉ-1", "21"},
		{"Bin of cafe-1 changes", func(t *testing.T, f *fixture) {
			if err := f.site.SetStock(context.Background(), "cafe-1", erpnext.Stock{Warehouse: erpnext.WarehouseStores, ActualQty: "9"}); err != nil {
				t.Fatal(err)
			}
		}, "CAFÉ-1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, detector.Config{})
			writeCaseCatalogue(t, f)
			cursors := f.startCursors(t)
			tc.change(t, f)
			c, _ := f.poll(t, cursors)
			var got []string
			for _, b := range c.batches {
				for _, it := range b.Items {
					got = append(got, fmt.Sprintf("%s (source %s, deleted %v)", it.Code, b.Source, it.Deleted))
					if it.Code != tc.want || it.Deleted {
						t.Errorf("poll emitted %s from %s, deleted %v; want only %s, not deleted", it.Code, b.Source, it.Deleted, tc.want)
					}
				}
			}
			it, ok := c.item(tc.want)
			if !ok {
				t.Fatalf("poll did not emit %s; emitted %v", tc.want, got)
			}
			if tc.rate != "" {
				if prices := member(t, it, "prices"); !strings.Contains(prices, `"rate":`+tc.rate+`,`) {
					t.Errorf("%s: no price of rate %s: %s", tc.want, tc.rate, prices)
				}
			}
		})
	}
}

// Matching by the database costs a query beyond the page queries only when a
// code or a row spells its item otherwise than tabItem.name.
func TestBuildLooksUpNamesOnlyForOtherSpellings(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	writeCaseCatalogue(t, f)
	tests := []struct {
		name  string
		codes []string
		want  int
	}{
		{"names whose rows spell them alike", []string{"ITEM-002"}, 0},
		{"missing codes only", []string{"NO-SUCH-ITEM", "GONE"}, 0},
		{"a name and a missing code", []string{"ITEM-002", "NO-SUCH-ITEM"}, 1},
		{"a code in another case", []string{"item-002"}, 1},
		// A spelling matched once on a page is not looked up again: the
		// barcode's "item-001" serves the price's; the Bin's "Item-001" costs one.
		{"rows spelling the item otherwise", []string{"ITEM-001"}, 2},
		{"a code spelled as some rows spell it", []string{"item-001"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.det.NameLookups()
			if _, err := f.det.Build(ctx, tc.codes); err != nil {
				t.Fatal(err)
			}
			if got := f.det.NameLookups() - before; got != tc.want {
				t.Errorf("Build(%q) ran %d name lookups, want %d", tc.codes, got, tc.want)
			}
		})
	}
}

// The query matching codes with names is a primary key lookup per code.
func TestItemNamesQueryUsesPrimaryKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	if err := f.site.Seed(ctx, 300); err != nil {
		t.Fatal(err)
	}
	codes := []any{"item-00001", "ITEM-00002", "no-such-item", "Item-00300"}
	rows, err := f.db.QueryContext(ctx, "EXPLAIN "+detector.ItemNamesQuery(len(codes)), codes...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		plan := map[string]string{}
		for i, c := range cols {
			plan[c] = vals[i].String
		}
		n++
		// A missing key is found missing by the same lookup, before execution.
		if (plan["type"] != "const" || plan["key"] != "PRIMARY") && !strings.Contains(plan["Extra"], "after reading const tables") {
			t.Errorf("plan %v: want a const lookup of PRIMARY", plan)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(codes) {
		t.Errorf("EXPLAIN gave %d rows for %d codes", n, len(codes))
	}
}
