package erpnext

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// renameFixture saves the template old (with every kind of row that follows a rename: barcode, UOMs,
// attributes, price, Bin, a variant, an SLE, a Website Item for it and its variant, an older Comment,
// an attached File and a Version) and returns the modified of every row of those tables.
func renameFixture(t *testing.T, s *Site, old, itemName string) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SaveItem(ctx, Item{Code: old, Name: itemName, Group: "G", StockUOM: "Nos", HasVariants: true,
		Barcodes: []Barcode{{"9999", "", ""}}, UOMs: []UOM{{"Box", "12"}}, Attributes: []Attribute{{Attribute: "Colour"}}}))
	must(s.SaveItem(ctx, Item{Code: "V1", Group: "G", StockUOM: "Nos", VariantOf: old, Attributes: []Attribute{{"Colour", "Red"}}}))
	must(s.SetPrice(ctx, old, Price{PriceList: PriceListSelling, Currency: "KES", Rate: "5"}))
	must(s.SetStock(ctx, old, Stock{Warehouse: WarehouseStores, ActualQty: "5"}))
	must(s.PublishWebsiteItem(ctx, "V1")) // the template's Website Item first, then the variant's
	must(s.AttachFile(ctx, old, "/files/old.jpg", false))
	for _, q := range []string{
		"INSERT INTO `tabStock Ledger Entry` (`name`, `item_code`, `warehouse`, `modified`) VALUES ('sle1', ?, 'Stores - AC', '2025-01-01 00:00:00.000000')",
		"INSERT INTO `tabVersion` (`name`, `ref_doctype`, `docname`, `modified`) VALUES ('ver1', 'Item', ?, '2025-01-01 00:00:00.000000')",
	} {
		if _, err := s.DB.Exec(q, old); err != nil {
			t.Fatal(err)
		}
	}
}

// renameTables are the tables whose rows a rename may touch.
var renameTables = []string{"tabItem", "tabItem Barcode", "tabUOM Conversion Detail", "tabItem Variant Attribute", "tabItem Price", "tabBin",
	"tabStock Ledger Entry", "tabWebsite Item", "tabComment", "tabFile", "tabVersion"}

// modifiedOf returns table/name → modified of every row of renameTables.
func modifiedOf(t *testing.T, s *Site) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, tbl := range renameTables {
		for _, r := range rowsOf(t, s.DB, "SELECT `name`, `modified` FROM `"+tbl+"`") {
			m[tbl+"/"+r[0]] = r[1]
		}
	}
	return m
}

func TestRenameItem(t *testing.T) {
	tests := []struct {
		name, old, new, itemName string
		wantItemName             string
		comment                  string
	}{
		{"distinct item_name", "OLD", "NEW", "Blue Lamp", "Blue Lamp",
			"renamed from <strong>OLD</strong> to <strong>NEW</strong>"},
		{"item_name equals code", "OLD", "NEW", "OLD", "NEW", // Item.before_rename set_value
			"renamed from <strong>OLD</strong> to <strong>NEW</strong>"},
		{"names escaped as sanitize_html does", "R&D \"1\"", "R&D 2", "x", "x",
			"renamed from <strong>R&amp;D \"1\"</strong> to <strong>R&amp;D 2</strong>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSite(t)
			ctx := context.Background()
			renameFixture(t, s, tc.old, tc.itemName)
			before := modifiedOf(t, s)
			s.Now = fixedClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			const now = "2026-01-01 03:00:00.000000"
			if err := s.RenameItem(ctx, tc.old, tc.new); err != nil {
				t.Fatal(err)
			}
			after := modifiedOf(t, s)
			// The renamed row moves (after_rename set_value); no other row does.
			for k, v := range before {
				if k == "tabItem/"+tc.old {
					if got := after["tabItem/"+tc.new]; got != now {
						t.Errorf("tabItem/%s modified %s, want %s (after_rename)", tc.new, got, now)
					}
					continue
				}
				if after[k] != v {
					t.Errorf("%s modified %s → %s", k, v, after[k])
				}
			}
			checks := []struct{ q, want string }{
				{"SELECT CONCAT(`name`, '/', `item_code`, '/', `item_name`) FROM `tabItem` WHERE `has_variants` = 1", tc.new + "/" + tc.new + "/" + tc.wantItemName},
				{"SELECT `variant_of` FROM `tabItem` WHERE `name` = 'V1'", tc.new},
				{"SELECT `parent` FROM `tabItem Barcode`", tc.new},
				{"SELECT GROUP_CONCAT(DISTINCT `parent`) FROM `tabUOM Conversion Detail` WHERE `parent` <> 'V1'", tc.new},
				{"SELECT `parent` FROM `tabItem Variant Attribute` WHERE `attribute_value` IS NULL", tc.new},
				{"SELECT `variant_of` FROM `tabItem Variant Attribute` WHERE `parent` = 'V1'", tc.new},
				{"SELECT `item_code` FROM `tabItem Price`", tc.new},
				{"SELECT `item_code` FROM `tabBin`", tc.new},
				{"SELECT `item_code` FROM `tabStock Ledger Entry`", tc.new},
				{"SELECT `item_code` FROM `tabWebsite Item` WHERE `has_variants` = 1", tc.new},
				{"SELECT `variant_of` FROM `tabWebsite Item` WHERE `item_code` = 'V1'", tc.new},
				{"SELECT `attached_to_name` FROM `tabFile`", tc.new},
				{"SELECT `docname` FROM `tabVersion`", tc.new},
				{"SELECT `reference_name` FROM `tabComment` WHERE `comment_type` = 'Attachment'", tc.new},
				{"SELECT CAST(COUNT(*) AS CHAR) FROM `tabDeleted Document`", "0"},
			}
			for _, c := range checks {
				if got := row(t, s.DB, c.q)[0]; got != c.want {
					t.Errorf("%s = %q, want %q", c.q, got, c.want)
				}
			}
			edit := row(t, s.DB, "SELECT `name`, `reference_doctype`, `reference_name`, `content`, `comment_email`, `owner`, `creation`, `modified` "+
				"FROM `tabComment` WHERE `comment_type` = 'Edit'")
			if want := "Item|" + tc.new + "|" + tc.comment + "|Administrator|Administrator|" + now + "|" + now; !hashName.MatchString(edit[0]) || join(edit[1:]) != want {
				t.Errorf("Edit comment %s\nwant <hash>|%s", join(edit), want)
			}

			if err := s.RenameItem(ctx, "V1", tc.new); err == nil {
				t.Error("rename onto an existing item succeeded")
			}
			if err := s.RenameItem(ctx, "GONE", "X"); !errors.Is(err, ErrNotFound) {
				t.Errorf("rename of a missing item: %v", err)
			}
			if n := count(t, s.DB, "SELECT COUNT(*) FROM `tabComment` WHERE `comment_type` = 'Edit'"); n != 1 {
				t.Errorf("%d Edit comments after failed renames, want 1", n)
			}
		})
	}
}

func TestRawRenameItem(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	renameFixture(t, s, "OLD", "OLD")
	before := modifiedOf(t, s)
	if err := s.RawRenameItem(ctx, "OLD", "NEW"); err != nil {
		t.Fatal(err)
	}
	after := modifiedOf(t, s)
	for k, v := range before {
		if k == "tabItem/OLD" {
			k = "tabItem/NEW"
		}
		if after[k] != v {
			t.Errorf("%s modified %s → %s", k, v, after[k])
		}
	}
	for _, c := range []struct{ q, want string }{
		{"SELECT CONCAT(`name`, '/', `item_code`, '/', `item_name`) FROM `tabItem` WHERE `has_variants` = 1", "NEW/NEW/OLD"},
		{"SELECT `parent` FROM `tabItem Barcode`", "NEW"},
		{"SELECT `item_code` FROM `tabItem Price`", "NEW"},
		{"SELECT `variant_of` FROM `tabItem` WHERE `name` = 'V1'", "NEW"},
		{"SELECT CAST(COUNT(*) AS CHAR) FROM `tabComment` WHERE `comment_type` = 'Edit'", "0"},
		{"SELECT CAST(COUNT(*) AS CHAR) FROM `tabDeleted Document`", "0"},
	} {
		if got := row(t, s.DB, c.q)[0]; got != c.want {
			t.Errorf("%s = %q, want %q", c.q, got, c.want)
		}
	}
	if err := s.RawRenameItem(ctx, "V1", "NEW"); err == nil {
		t.Error("raw rename onto an existing item succeeded")
	}
}

func TestMergeItem(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SaveItem(ctx, Item{Code: "OLD", Name: "OLD", Group: "G", StockUOM: "Nos", Barcodes: []Barcode{{"1111", "", ""}}, UOMs: []UOM{{"Box", "6"}}}))
	must(s.SaveItem(ctx, Item{Code: "INTO", Group: "G", StockUOM: "Nos", Barcodes: []Barcode{{"2222", "", ""}}}))
	must(s.SaveItem(ctx, Item{Code: "OTHER-UOM", Group: "G", StockUOM: "Kg"}))
	must(s.SetPrice(ctx, "OLD", Price{PriceList: PriceListSelling, Currency: "KES", Rate: "5"}))
	must(s.SetPrice(ctx, "INTO", Price{PriceList: PriceListSelling, Currency: "KES", Rate: "6"}))
	must(s.SetStock(ctx, "OLD", Stock{Warehouse: WarehouseStores, ActualQty: "5", ReservedQty: "1"}))
	must(s.SetStock(ctx, "OLD", Stock{Warehouse: WarehouseTransit, ActualQty: "0.5"}))
	must(s.SetStock(ctx, "INTO", Stock{Warehouse: WarehouseStores, ActualQty: "7", ReservedQty: "2"}))
	must(s.SetStock(ctx, "INTO", Stock{Warehouse: WarehouseFinished, ActualQty: "1"}))
	must(s.AttachFile(ctx, "OLD", "/files/old.jpg", false))
	for _, bad := range []struct {
		old, into string
		notFound  bool
	}{{"OLD", "NOPE", true}, {"NOPE", "INTO", true}, {"OLD", "OTHER-UOM", false}, {"OLD", "OLD", false}} {
		err := s.MergeItem(ctx, bad.old, bad.into)
		if err == nil || errors.Is(err, ErrNotFound) != bad.notFound {
			t.Errorf("MergeItem(%s, %s) = %v", bad.old, bad.into, err)
		}
	}
	oldBins := rowsOf(t, s.DB, "SELECT `name` FROM `tabBin`")
	prices := rowsOf(t, s.DB, "SELECT `name`, `modified` FROM `tabItem Price` ORDER BY `name`")

	s.Now = steppingClock(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Second)
	if err := s.MergeItem(ctx, "OLD", "INTO"); err != nil {
		t.Fatal(err)
	}
	// Clock reads: 1 item_name set_value (item_name = OLD), 2 after_rename item_code, 3 last_purchase_rate,
	// 4-6 the three Bins, 7 the Edit comment, 8 the Item's Deleted Document, 9 the feed. The File moved to
	// INTO, so delete_doc finds none to delete.
	at := func(k int) string { return time.Date(2026, 2, 1, 3, 0, k-1, 0, time.UTC).Format(ModifiedLayout) }
	checks := []struct{ q, want string }{
		{"SELECT CONCAT(`name`, '|', `modified`) FROM `tabItem` WHERE `name` IN ('OLD', 'INTO')", "INTO|" + at(3)},
		{"SELECT GROUP_CONCAT(`parent` ORDER BY `parent`) FROM `tabItem Barcode`", "INTO"},
		{"SELECT GROUP_CONCAT(`parent` ORDER BY `parent`) FROM `tabUOM Conversion Detail` WHERE `parent` IN ('OLD', 'INTO')", "INTO"},
		{"SELECT GROUP_CONCAT(DISTINCT `item_code`) FROM `tabItem Price`", "INTO"},
		{"SELECT `attached_to_name` FROM `tabFile`", "INTO"},
		{"SELECT GROUP_CONCAT(CONCAT(`deleted_doctype`, ' ', `deleted_name`, ' ', `modified`)) FROM `tabDeleted Document`", "Item OLD " + at(8)},
		{"SELECT CONCAT(`reference_name`, '|', `content`, '|', `modified`) FROM `tabComment` WHERE `comment_type` = 'Edit'",
			"INTO|merged <strong>OLD</strong> into <strong>INTO</strong>|" + at(7)},
		{"SELECT CONCAT(`subject`, '|', `modified`) FROM `tabComment` WHERE `comment_type` = 'Deleted'", "Item OLD|" + at(9)},
		{"SELECT `reference_name` FROM `tabComment` WHERE `comment_type` = 'Attachment'", "INTO"},
	}
	for _, c := range checks {
		if got := row(t, s.DB, c.q)[0]; got != c.want {
			t.Errorf("%s\n got %q\nwant %q", c.q, got, c.want)
		}
	}
	// Prices moved with their modified.
	if got := rowsOf(t, s.DB, "SELECT `name`, `modified` FROM `tabItem Price` ORDER BY `name`"); len(got) != 2 || join(got[0]) != join(prices[0]) || join(got[1]) != join(prices[1]) {
		t.Errorf("prices %v, want %v", got, prices)
	}
	// recalculate_bin_qty: new Bins, sums per warehouse, sorted by warehouse.
	bins := rowsOf(t, s.DB, "SELECT `name`, `item_code`, `warehouse`, `actual_qty`, `reserved_qty`, `projected_qty`, `stock_uom`, `creation`, `modified` "+
		"FROM `tabBin` ORDER BY `warehouse`")
	want := []string{
		"INTO|" + WarehouseFinished + "|1.000000000|0.000000000|1.000000000|Nos|" + at(4) + "|" + at(4),
		"INTO|" + WarehouseStores + "|12.000000000|3.000000000|9.000000000|Nos|" + at(5) + "|" + at(5),
		"INTO|" + WarehouseTransit + "|0.500000000|0.000000000|0.500000000|Nos|" + at(6) + "|" + at(6),
	}
	if len(bins) != len(want) {
		t.Fatalf("Bins %v", bins)
	}
	for i, b := range bins {
		if join(b[1:]) != want[i] || !hashName.MatchString(b[0]) {
			t.Errorf("Bin %d = %s, want <hash>|%s", i, join(b), want[i])
		}
		for _, o := range oldBins {
			if o[0] == b[0] {
				t.Errorf("Bin %s kept its name", b[0])
			}
		}
	}

	// Webshop refuses a merge of two published items.
	must(s.SaveItem(ctx, Item{Code: "W1", Group: "G", StockUOM: "Nos"}))
	must(s.SaveItem(ctx, Item{Code: "W2", Group: "G", StockUOM: "Nos"}))
	must(s.PublishWebsiteItem(ctx, "W1"))
	must(s.PublishWebsiteItem(ctx, "W2"))
	if err := s.MergeItem(ctx, "W1", "W2"); err == nil || !strings.Contains(err.Error(), "Website Item") {
		t.Errorf("merge of two published items: %v", err)
	}
}

func TestBold(t *testing.T) {
	for in, want := range map[string]string{"A&B": "<strong>A&amp;B</strong>", `<x> "q" 'a'`: `<strong>&lt;x&gt; "q" 'a'</strong>`, "Ньютон": "<strong>Ньютон</strong>"} {
		if got := bold(in); got != want {
			t.Errorf("bold(%q) = %q, want %q", in, got, want)
		}
	}
}
