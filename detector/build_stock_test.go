package detector_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// stockTree saves the warehouse tree of a company as ERPNext does (a real
// nested set, checked) and an item "TREE-1" with Bins on three of its leaves
// and on a warehouse that has no tabWarehouse row:
//
//	All Warehouses - AC (1, 16)     group
//	  Stores - AC (2, 3)            actual 10,  reserved 2,   projected 8
//	  Finished Goods - AC (4, 5)    actual 5,   reserved 7,   projected -2 (more reserved than there is)
//	  Shops - AC (6, 9)             group
//	    Shop 1 - AC (7, 8)          actual 3.3, reserved 0.1, projected 3.2
//	  Empty - AC (10, 11)           no Bin
//	  Depots - AC (12, 13)          group without leaves
//	  Transit - AC (14, 15)         no Bin
//	W-UNKNOWN (no row)              actual 1,   reserved 0,   projected 1
func stockTree(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	for _, w := range []erpnext.Warehouse{
		{Name: "All Warehouses - AC", IsGroup: true},
		{Name: "Stores - AC", Parent: "All Warehouses - AC"},
		{Name: "Finished Goods - AC", Parent: "All Warehouses - AC"},
		{Name: "Shops - AC", Parent: "All Warehouses - AC", IsGroup: true},
		{Name: "Shop 1 - AC", Parent: "Shops - AC"},
		{Name: "Empty - AC", Parent: "All Warehouses - AC"},
		{Name: "Depots - AC", Parent: "All Warehouses - AC", IsGroup: true},
		{Name: "Transit - AC", Parent: "All Warehouses - AC"},
	} {
		w.Company = "Acme"
		if err := f.site.SaveWarehouse(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	wantTree := map[string][2]int{"All Warehouses - AC": {1, 16}, "Stores - AC": {2, 3}, "Finished Goods - AC": {4, 5},
		"Shops - AC": {6, 9}, "Shop 1 - AC": {7, 8}, "Empty - AC": {10, 11}, "Depots - AC": {12, 13}, "Transit - AC": {14, 15}}
	for name, want := range wantTree {
		var got [2]int
		if err := f.db.QueryRowContext(ctx, "SELECT lft, rgt FROM `tabWarehouse` WHERE name = ?", name).Scan(&got[0], &got[1]); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("warehouse %s has lft, rgt %v, want %v", name, got, want)
		}
	}
	if err := f.site.SaveItem(ctx, erpnext.Item{Code: "TREE-1", Group: "Products", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []erpnext.Stock{
		{Warehouse: "Stores - AC", ActualQty: "10", ReservedQty: "2"},
		{Warehouse: "Finished Goods - AC", ActualQty: "5", ReservedQty: "7"},
		{Warehouse: "Shop 1 - AC", ActualQty: "3.3", ReservedQty: "0.1"},
		{Warehouse: "W-UNKNOWN", ActualQty: "1"},
	} {
		if err := f.site.SetStock(ctx, "TREE-1", st); err != nil {
			t.Fatal(err)
		}
	}
}

// stockEntry is the JSON of a stock entry.
func stockEntry(warehouse string, group bool, actual, available, projected, reserved string) string {
	return fmt.Sprintf(`{"actual_qty":%s,"available_qty":%s,"is_group":%t,"projected_qty":%s,"reserved_qty":%s,"warehouse":%q}`,
		actual, available, group, projected, reserved, warehouse)
}

// stockTotal is the JSON of a stock_total.
func stockTotal(actual, available, projected, reserved string) string {
	return fmt.Sprintf(`{"actual_qty":%s,"available_qty":%s,"projected_qty":%s,"reserved_qty":%s}`, actual, available, projected, reserved)
}

func TestBuildStockWarehouseTree(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	stockTree(t, f)
	var (
		stores   = stockEntry("Stores - AC", false, "10", "8", "8", "2")
		finished = stockEntry("Finished Goods - AC", false, "5", "0", "-2", "7")
		shop1    = stockEntry("Shop 1 - AC", false, "3.3", "3.2", "3.2", "0.1")
		unknown  = stockEntry("W-UNKNOWN", false, "1", "1", "1", "0")
		// Available: 8 + 0 (5 − 7, clipped before summing) + 3.2.
		all   = stockEntry("All Warehouses - AC", true, "18.3", "11.2", "9.2", "9.1")
		shops = stockEntry("Shops - AC", true, "3.3", "3.2", "3.2", "0.1")
	)
	tests := []struct {
		name       string
		warehouses []string
		stock      []string
		total      string
	}{
		{"none selected: one entry per Bin, as read", nil,
			[]string{finished, shop1, stores, unknown}, stockTotal("19.3", "12.2", "10.2", "9.1")},
		{"a group sums its leaves, available clipped per leaf", []string{"All Warehouses - AC"},
			[]string{all}, stockTotal("18.3", "11.2", "9.2", "9.1")},
		{"a leaf in two selected groups and selected itself is counted once", []string{"Stores - AC", "Shops - AC", "All Warehouses - AC"},
			[]string{all, shops, stores}, stockTotal("18.3", "11.2", "9.2", "9.1")},
		{"a leaf and an unknown warehouse", []string{"W-UNKNOWN", "Finished Goods - AC"},
			[]string{finished, unknown}, stockTotal("6", "1", "-1", "7")},
		{"selected warehouses without Bins have zeros", []string{"Empty - AC", "Depots - AC", "W-NOWHERE", "Shops - AC"},
			[]string{stockEntry("Depots - AC", true, "0", "0", "0", "0"), stockEntry("Empty - AC", false, "0", "0", "0", "0"), shops,
				stockEntry("W-NOWHERE", false, "0", "0", "0", "0")},
			stockTotal("3.3", "3.2", "3.2", "0.1")},
		{"names as the database matches them, each once", []string{"all warehouses - ac", "stores - ac", "Stores - AC", "Stores - AC"},
			[]string{all, stores}, stockTotal("18.3", "11.2", "9.2", "9.1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			det, err := detector.New(ctx, f.db, detector.Config{Selection: detector.Selection{Warehouses: tc.warehouses}, PageSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			items, err := det.Build(ctx, []string{"TREE-1"})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := member(t, items[0], "stock"), "["+strings.Join(tc.stock, ",")+"]"; got != want {
				t.Errorf("stock =\n %s\nwant\n %s", got, want)
			}
			if got := member(t, items[0], "stock_total"); got != tc.total {
				t.Errorf("stock_total = %s, want %s", got, tc.total)
			}
		})
	}
}

// A Bin on a group warehouse itself (a reservation made through the API;
// ERPNext does not forbid it) gives the group an entry when no warehouse is
// selected. The group's quantities are those of its leaves, as for a
// selected group, and the Bin itself, being on no leaf, counts nowhere.
func TestBuildStockBinOnGroup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	stockTree(t, f)
	if err := f.site.SaveItem(ctx, erpnext.Item{Code: "TREE-2", Group: "Products", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	if err := f.site.SetStock(ctx, "TREE-2", erpnext.Stock{Warehouse: "Shop 1 - AC", ActualQty: "2"}); err != nil {
		t.Fatal(err)
	}
	if err := f.site.ReserveStock(ctx, "TREE-2", "Shops - AC", "1"); err != nil {
		t.Fatal(err)
	}
	shop1 := stockEntry("Shop 1 - AC", false, "2", "2", "2", "0")
	shops := stockEntry("Shops - AC", true, "2", "2", "2", "0")
	for _, tc := range []struct {
		warehouses []string
		stock      []string
	}{
		{nil, []string{shop1, shops}},
		{[]string{"Shops - AC"}, []string{shops}},
	} {
		det, err := detector.New(ctx, f.db, detector.Config{Selection: detector.Selection{Warehouses: tc.warehouses}})
		if err != nil {
			t.Fatal(err)
		}
		items, err := det.Build(ctx, []string{"TREE-2"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := member(t, items[0], "stock"), "["+strings.Join(tc.stock, ",")+"]"; got != want {
			t.Errorf("%q: stock =\n %s\nwant\n %s", tc.warehouses, got, want)
		}
		if got, want := member(t, items[0], "stock_total"), stockTotal("2", "2", "2", "0"); got != want {
			t.Errorf("%q: stock_total = %s, want %s", tc.warehouses, got, want)
		}
	}
}

// ERPNext moves lft and rgt of many warehouses without touching `modified`
// (FINDINGS §8.7): the tree is read with the Bins, never kept.
func TestBuildStockReadsTheTreeEachTime(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	stockTree(t, f)
	det, err := detector.New(ctx, f.db, detector.Config{Selection: detector.Selection{Warehouses: []string{"Shops - AC"}}})
	if err != nil {
		t.Fatal(err)
	}
	build := func() string {
		items, err := det.Build(ctx, []string{"TREE-1"})
		if err != nil {
			t.Fatal(err)
		}
		return member(t, items[0], "stock")
	}
	if got, want := build(), "["+stockEntry("Shops - AC", true, "3.3", "3.2", "3.2", "0.1")+"]"; got != want {
		t.Fatalf("before the move: stock = %s, want %s", got, want)
	}
	if err := f.site.SaveWarehouse(ctx, erpnext.Warehouse{Name: "Stores - AC", Parent: "Shops - AC", Company: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if got, want := build(), "["+stockEntry("Shops - AC", true, "13.3", "11.2", "11.2", "2.1")+"]"; got != want {
		t.Errorf("after Stores - AC moved under Shops - AC: stock = %s, want %s", got, want)
	}
}
