package detector_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// itemGroup is a row of the Item Group tree (nested set).
type itemGroup struct {
	name, parent string
	lft, rgt     int
}

// selectionTree is:
//
//	All Item Groups
//	├── Products
//	│   └── Lamps
//	│       └── Desk Lamps
//	├── Services
//	└── Raw Material
func selectionTree() []itemGroup {
	return []itemGroup{
		{"All Item Groups", "", 1, 12},
		{"Products", "All Item Groups", 2, 7},
		{"Lamps", "Products", 3, 6},
		{"Desk Lamps", "Lamps", 4, 5},
		{"Services", "All Item Groups", 8, 9},
		{"Raw Material", "All Item Groups", 10, 11},
	}
}

// badCode is an item code that is not UTF-8: selected, it is a Problem.
const badCode = "BAD-\xed\xa0\x80"

// selectionItem is an item of the selection fixture and what selects it.
type selectionItem struct {
	code, group, brand string
	sales, sync        bool
}

func selectionItems() []selectionItem {
	return []selectionItem{
		{"LAMP-1", "Desk Lamps", "Philips", true, true},
		{"LAMP-2", "Lamps", "Osram", true, false},
		{"PROD-1", "Products", "", false, true},
		{"SVC-1", "Services", "Philips", true, true},
		{"RAW-1", "Raw Material", "Osram", false, false},
		{badCode, "Raw Material", "", true, true},
	}
}

// newSelectionFixture is a site with the tree of selectionTree, the items of
// selectionItems (with prices, stock and barcodes) and a Check custom field
// sync_to_shop on Item, as Customize Form adds it.
func newSelectionFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	now := f.site.Format(f.site.Now())
	for _, g := range selectionTree() {
		isGroup := 0
		if g.rgt-g.lft > 1 {
			isGroup = 1
		}
		if _, err := f.db.ExecContext(ctx, "INSERT INTO `tabItem Group` (name, creation, modified, modified_by, owner, item_group_name, "+
			"parent_item_group, is_group, lft, rgt, old_parent) VALUES (?, ?, ?, 'Administrator', 'Administrator', ?, ?, ?, ?, ?, ?)",
			g.name, now, now, g.name, g.parent, isGroup, g.lft, g.rgt, g.parent); err != nil {
			t.Fatal(err)
		}
	}
	// frappe.custom.doctype.custom_field: ALTER TABLE ADD COLUMN, a Check is int(1) NOT NULL DEFAULT 0.
	if _, err := f.db.ExecContext(ctx, "ALTER TABLE `tabItem` ADD COLUMN `sync_to_shop` int(1) NOT NULL DEFAULT 0"); err != nil {
		t.Fatal(err)
	}
	for _, it := range selectionItems() {
		if err := f.site.SaveItem(ctx, erpnext.Item{Code: it.code, Group: it.group, Brand: it.brand, StockUOM: "Nos",
			Barcodes: []erpnext.Barcode{{Barcode: "BC-" + it.code}}}); err != nil {
			t.Fatal(err)
		}
		// An Item save writes every column with the row's new modified.
		if _, err := f.db.ExecContext(ctx, "UPDATE `tabItem` SET is_sales_item = ?, sync_to_shop = ?, modified = ? WHERE name = ?",
			it.sales, it.sync, f.site.Format(f.site.Now()), it.code); err != nil {
			t.Fatal(err)
		}
		if err := f.site.SetPrice(ctx, it.code, erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "10"}); err != nil {
			t.Fatal(err)
		}
		if err := f.site.SetStock(ctx, it.code, erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "5"}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// detectorWith is a Detector of f's database with cfg.
func (f *fixture) detectorWith(t *testing.T, cfg detector.Config) *detector.Detector {
	t.Helper()
	det, err := detector.New(context.Background(), f.db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return det
}

// built is the canonical JSON of each built item's content by code ("" for
// one without content).
func built(t *testing.T, items []detector.Item) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, it := range items {
		if it.Content != nil {
			out[it.Code] = string(it.Content.Append(nil))
		} else {
			out[it.Code] = ""
		}
	}
	return out
}

// Each selection key alone and together: selected items are built exactly as
// without a selection, the others come back as deletes with reason
// "deselected", and a code that names no item as a plain delete.
func TestBuildSelection(t *testing.T) {
	ctx := context.Background()
	f := newSelectionFixture(t)
	codes := []string{"NO-SUCH-ITEM"}
	for _, it := range selectionItems() {
		codes = append(codes, it.code)
	}
	whole, err := f.detectorWith(t, detector.Config{}).Build(ctx, codes)
	if err != nil {
		t.Fatal(err)
	}
	want := built(t, whole)
	all := []string{"LAMP-1", "LAMP-2", "PROD-1", "SVC-1", "RAW-1", badCode}
	tests := []struct {
		name     string
		sel      detector.Selection
		selected []string
	}{
		{"empty selects everything", detector.Selection{}, all},
		{"group with its subgroups", detector.Selection{ItemGroups: []string{"Products"}}, []string{"LAMP-1", "LAMP-2", "PROD-1"}},
		{"subgroup", detector.Selection{ItemGroups: []string{"Lamps"}}, []string{"LAMP-1", "LAMP-2"}},
		{"leaf group, spelt as the database matches it", detector.Selection{ItemGroups: []string{"desk lamps"}}, []string{"LAMP-1"}},
		{"two groups", detector.Selection{ItemGroups: []string{"Services", "Raw Material"}}, []string{"SVC-1", "RAW-1", badCode}},
		{"the root", detector.Selection{ItemGroups: []string{"All Item Groups"}}, all},
		{"a group that does not exist", detector.Selection{ItemGroups: []string{"Nope"}}, nil},
		{"brand", detector.Selection{Brands: []string{"Philips"}}, []string{"LAMP-1", "SVC-1"}},
		{"two brands: no brand is not selected", detector.Selection{Brands: []string{"Philips", "Osram"}}, []string{"LAMP-1", "LAMP-2", "SVC-1", "RAW-1"}},
		{"sales items only", detector.Selection{SalesItemsOnly: true}, []string{"LAMP-1", "LAMP-2", "SVC-1", badCode}},
		{"sync field", detector.Selection{SyncField: "sync_to_shop"}, []string{"LAMP-1", "PROD-1", "SVC-1", badCode}},
		{"group and brand", detector.Selection{ItemGroups: []string{"Products"}, Brands: []string{"Osram"}}, []string{"LAMP-2"}},
		{"all four", detector.Selection{ItemGroups: []string{"Products", "Services"}, Brands: []string{"Philips", "Osram"}, SalesItemsOnly: true, SyncField: "sync_to_shop"},
			[]string{"LAMP-1", "SVC-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			det := f.detectorWith(t, detector.Config{Selection: tc.sel})
			items, err := det.Build(ctx, codes)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(codes) {
				t.Fatalf("%d items for %d codes", len(items), len(codes))
			}
			for _, it := range items {
				switch {
				case it.Code == "NO-SUCH-ITEM":
					if !it.Deleted || it.Reason != "" {
						t.Errorf("%s: deleted %v reason %q, want a plain delete", it.Code, it.Deleted, it.Reason)
					}
				case it.Code == badCode && slices.Contains(tc.selected, it.Code):
					if it.Problem == nil || it.Deleted {
						t.Errorf("%q selected: problem %v, deleted %v; want its problem", it.Code, it.Problem, it.Deleted)
					}
				case slices.Contains(tc.selected, it.Code):
					if it.Deleted || it.Problem != nil || it.Content == nil {
						t.Fatalf("%s: deleted %v, problem %v; want it built", it.Code, it.Deleted, it.Problem)
					}
					if g := string(it.Content.Append(nil)); g != want[it.Code] {
						t.Errorf("%s:\n got %s\nwant %s", it.Code, g, want[it.Code])
					}
				default:
					if !it.Deleted || it.Reason != detector.ReasonDeselected || it.Content != nil || it.Problem != nil || it.RenamedTo != "" {
						t.Errorf("%q: deleted %v, reason %q, content %v, problem %v; want deselected",
							it.Code, it.Deleted, it.Reason, it.Content != nil, it.Problem)
					}
				}
			}
		})
	}
}

// A deselected item comes back once, under its name, whatever the codes
// that name it and the pages they fall on.
func TestBuildDeselectedSpelling(t *testing.T) {
	ctx := context.Background()
	f := newSelectionFixture(t)
	for _, pageSize := range []int{1, 500} {
		det := f.detectorWith(t, detector.Config{PageSize: pageSize, Selection: detector.Selection{Brands: []string{"Philips"}}})
		items, err := det.Build(ctx, []string{"LAMP-2", "lamp-2", "LAMP-1"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			got = append(got, it.Code+"/"+it.Reason)
		}
		if strings.Join(got, ",") != "LAMP-1/,LAMP-2/deselected" {
			t.Errorf("page size %d: %q", pageSize, got)
		}
	}
}

// An item that leaves the selection (its group changes) is handed out by the
// next poll as deselected, one that enters is built whole; the group tree is
// read at every build, since moving a group changes no item's modified.
func TestPollItemLeavesSelection(t *testing.T) {
	ctx := context.Background()
	f := newSelectionFixture(t)
	det := f.detectorWith(t, detector.Config{Selection: detector.Selection{ItemGroups: []string{"Lamps"}}})
	cursors, err := det.StartCursors(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.site.SaveItem(ctx, erpnext.Item{Code: "LAMP-2", Group: "Services", Brand: "Osram", StockUOM: "Nos", Barcodes: []erpnext.Barcode{{Barcode: "BC-LAMP-2"}}}))
	must(f.site.SaveItem(ctx, erpnext.Item{Code: "SVC-1", Group: "Desk Lamps", Brand: "Philips", StockUOM: "Nos", Barcodes: []erpnext.Barcode{{Barcode: "BC-SVC-1"}}}))
	c := &collector{}
	if _, err := det.Poll(ctx, cursors, c.emit); err != nil {
		t.Fatal(err)
	}
	if it, ok := c.item("LAMP-2"); !ok || !it.Deleted || it.Reason != detector.ReasonDeselected {
		t.Errorf("LAMP-2 left Lamps: %+v, want deselected", it)
	}
	if it, ok := c.item("SVC-1"); !ok || it.Deleted || it.Content == nil || member(t, it, "item_group") != `"Desk Lamps"` {
		t.Errorf("SVC-1 entered Lamps: %+v, want it built", it)
	}
	// Lamps moves under Services (NestedSet.update_move_node: raw updates of
	// lft/rgt, no modified): the tree is now All(1,12) > Products(2,3),
	// Services(4,9) > Lamps(5,8) > Desk Lamps(6,7), Raw Material(10,11).
	for _, q := range []string{
		"UPDATE `tabItem Group` SET lft = 2, rgt = 3 WHERE name = 'Products'",
		"UPDATE `tabItem Group` SET lft = 4, rgt = 9 WHERE name = 'Services'",
		"UPDATE `tabItem Group` SET lft = 5, rgt = 8, parent_item_group = 'Services', old_parent = 'Services' WHERE name = 'Lamps'",
		"UPDATE `tabItem Group` SET lft = 6, rgt = 7 WHERE name = 'Desk Lamps'",
	} {
		if _, err := f.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		groups, selected []string
	}{
		{[]string{"Services"}, []string{"LAMP-1", "LAMP-2", "SVC-1"}},
		{[]string{"Products"}, []string{"PROD-1"}},
	} {
		det.SetFilters(detector.Selection{ItemGroups: tc.groups}, "")
		items, err := det.Build(ctx, []string{"LAMP-1", "LAMP-2", "PROD-1", "SVC-1"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			if !it.Deleted {
				got = append(got, it.Code)
			} else if it.Reason != detector.ReasonDeselected {
				t.Errorf("%s: reason %q", it.Code, it.Reason)
			}
		}
		if !slices.Equal(got, tc.selected) {
			t.Errorf("groups %q after the move select %q, want %q", tc.groups, got, tc.selected)
		}
	}
}

// erp.sync_field must name a Check column of tabItem.
func TestCheckSelectionSyncField(t *testing.T) {
	ctx := context.Background()
	f := newSelectionFixture(t)
	for _, q := range []string{
		"ALTER TABLE `tabItem` ADD COLUMN `shop_flag` tinyint NOT NULL DEFAULT 0", // a Check on ERPNext v16
		"ALTER TABLE `tabItem` ADD COLUMN `shop_note` varchar(140)",
		"ALTER TABLE `tabItem` ADD COLUMN `shop_rank` int(11) NOT NULL DEFAULT 0",
	} {
		if _, err := f.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		field string
		want  string // "" when fine; else a part of the SiteError
	}{
		{"", ""},
		{"sync_to_shop", ""},
		{"shop_flag", ""},
		{"no_such_field", `erp.sync_field = "no_such_field": tabItem has no column "no_such_field"`},
		{"shop_note", `erp.sync_field = "shop_note": tabItem.shop_note is varchar(140), not a Check`},
		{"shop_rank", `erp.sync_field = "shop_rank": tabItem.shop_rank is int(11), not a Check`},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			err := f.det.CheckSelection(ctx, detector.Selection{SyncField: tc.field})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckSelection: %v", err)
				}
				return
			}
			var se *detector.SiteError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckSelection: %v, want a SiteError with %q", err, tc.want)
			}
		})
	}
	// A column dropped after the check: Build fails with a SiteError naming
	// erp.sync_field, not a bare SQL error.
	det := f.detectorWith(t, detector.Config{Selection: detector.Selection{SyncField: "shop_flag"}})
	if _, err := f.db.ExecContext(ctx, "ALTER TABLE `tabItem` DROP COLUMN `shop_flag`"); err != nil {
		t.Fatal(err)
	}
	_, err := det.Build(ctx, []string{"LAMP-1"})
	var se *detector.SiteError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `erp.sync_field = "shop_flag"`) {
		t.Errorf("Build after the column was dropped: %v, want a SiteError naming erp.sync_field", err)
	}
}
