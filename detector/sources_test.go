package detector_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// newZoneFixture is newFixture for a site in time zone tz; prepare, when not
// nil, changes the database before the detector is made.
func newZoneFixture(t *testing.T, cfg detector.Config, tz string, prepare func(db *sql.DB)) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn, err := detector.PrepareDSN(mariadbtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := erpnext.CreateSchema(ctx, db, tz); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(db)
	}
	site, err := erpnext.NewSite(db, tz)
	if err != nil {
		t.Fatal(err)
	}
	det, err := detector.New(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, site: site, det: det}
}

// siteNow is frappe.utils.now(): the site's wall clock with microseconds.
func siteNow(f *fixture) string { return f.site.Format(time.Now()) }

// hashName is a random 10-character document name, as autoname hash gives.
func hashName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// saveItems saves plain items.
func saveItems(t *testing.T, f *fixture, items ...erpnext.Item) {
	t.Helper()
	for _, it := range items {
		if it.Group == "" {
			it.Group = "Products"
		}
		if it.StockUOM == "" {
			it.StockUOM = "Nos"
		}
		if err := f.site.SaveItem(context.Background(), it); err != nil {
			t.Fatal(err)
		}
	}
}

func setPrice(t *testing.T, f *fixture, code, priceList, rate string) {
	t.Helper()
	if err := f.site.SetPrice(context.Background(), code, erpnext.Price{PriceList: priceList, Currency: "KES", Rate: rate}); err != nil {
		t.Fatal(err)
	}
}

// settled returns cursors after a poll that takes the fixture's setup out of
// the way.
func settled(t *testing.T, f *fixture) map[string]detector.Cursor {
	t.Helper()
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)
	return cursors
}

// distinct returns the codes emitted, without repeats, sorted.
func (c *collector) distinct() []string { return slices.Compact(c.codes()) }

// ofSource returns the batches of one source.
func (c *collector) ofSource(source string) []detector.Batch {
	var out []detector.Batch
	for _, b := range c.batches {
		if b.Source == source {
			out = append(out, b)
		}
	}
	return out
}

// priceListSave is PriceList.on_update's update_item_price (FINDINGS §8.2),
// literally: every row of the list stamped with the DB session's NOW().
func priceListSave(t *testing.T, f *fixture, priceList string) {
	t.Helper()
	execSQL(t, f, "UPDATE `tabItem Price` SET currency = 'KES', buying = 0, selling = 1, modified = NOW() WHERE price_list = ?", priceList)
}

// itemsWithPriceIn returns the items with a price in the list, sorted.
func itemsWithPriceIn(t *testing.T, f *fixture, priceList string) []string {
	t.Helper()
	rows, err := f.db.QueryContext(context.Background(), "SELECT DISTINCT item_code FROM `tabItem Price` WHERE price_list = ? ORDER BY item_code", priceList)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// The fixture's MariaDB runs in UTC and the site in Asia/Kolkata: a Price
// List save stamps its Item Prices 5h30 behind site time, where the site-time
// cursor never looks. The source on the server's clock finds them in the
// next poll.
func TestPollServerClockPriceRows(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	var sysZone string
	if err := f.db.QueryRowContext(ctx, "SELECT @@system_time_zone").Scan(&sysZone); err != nil {
		t.Fatal(err)
	}
	if sysZone != "UTC" {
		t.Skipf("the test server's zone is %s, not UTC", sysZone)
	}
	saveItems(t, f, erpnext.Item{Code: "A-1"}, erpnext.Item{Code: "A-2"}, erpnext.Item{Code: "B-1"})
	setPrice(t, f, "A-1", "Wholesale", "1")
	setPrice(t, f, "A-2", "Wholesale", "2")
	setPrice(t, f, "B-1", "Standard Selling", "3")
	cursors := settled(t, f)

	priceListSave(t, f, "Wholesale")
	var stamped string
	if err := f.db.QueryRowContext(ctx, "SELECT MAX(modified) FROM `tabItem Price` WHERE price_list = 'Wholesale'").Scan(&stamped); err != nil {
		t.Fatal(err)
	}
	if now := siteNow(f); !(stamped < shift(t, now, -5*time.Hour)) {
		t.Fatalf("NOW() stamped %s at site time %s: want 5h30 behind (DB session in UTC)", stamped, now)
	}
	c, cursors := f.poll(t, cursors)
	if got, want := strings.Join(c.distinct(), ","), "A-1,A-2"; got != want {
		t.Fatalf("the poll after a Price List save emitted %s, want %s", got, want)
	}
	if b := c.ofSource(detector.SourcePriceServer); len(b) == 0 || len(b[len(b)-1].Items) != 2 {
		t.Errorf("batches of %s: %+v; want the two items", detector.SourcePriceServer, b)
	}
	if cur := cursors[detector.SourcePriceServer].Modified; cur < stamped || cur > shift(t, stamped, time.Minute) {
		t.Errorf("server-clock cursor %s, want at the rows' %s (server time)", cur, stamped)
	}
	rows := f.det.RowsRead()
	c, _ = f.poll(t, cursors)
	if got := c.codes(); len(got) != 0 {
		t.Errorf("the next poll emitted %v again", got)
	}
	if got := f.det.RowsRead() - rows; got != 0 {
		t.Errorf("the next poll read %d rows, want 0", got)
	}
}

// When the DB session's clock goes back behind the cursor (a daylight-saving
// fall-back of the server's zone), NOW() stamps rows behind it: the source
// starts again at the clock, whose window covers them.
func TestPollServerClockGoesBack(t *testing.T) {
	f := newFixture(t, detector.Config{})
	saveItems(t, f, erpnext.Item{Code: "A-1"})
	setPrice(t, f, "A-1", "Wholesale", "1")
	cursors := settled(t, f)
	cursors[detector.SourcePriceServer] = detector.Cursor{Modified: shift(t, cursors[detector.SourcePriceServer].Modified, time.Hour)}
	priceListSave(t, f, "Wholesale")
	c, next := f.poll(t, cursors)
	if got := strings.Join(c.distinct(), ","); got != "A-1" {
		t.Fatalf("emitted %q, want A-1", got)
	}
	if next[detector.SourcePriceServer].Modified >= cursors[detector.SourcePriceServer].Modified {
		t.Errorf("server-clock cursor %+v, want it back at the clock", next[detector.SourcePriceServer])
	}
}

// Where the DB session's zone has the site's offset, NOW() rows are in site
// time and the site-time source reads them; the server-clock source makes no
// query and only moves its cursor.
func TestPollServerClockSkippedInSiteZone(t *testing.T) {
	ctx := context.Background()
	f := newZoneFixture(t, detector.Config{Overlap: time.Second}, "UTC", nil)
	saveItems(t, f, erpnext.Item{Code: "A-1"})
	setPrice(t, f, "A-1", "Wholesale", "1")
	cursors := settled(t, f)
	time.Sleep(1100 * time.Millisecond) // NOW() has whole seconds: past the rows above
	priceListSave(t, f, "Wholesale")
	c, cursors := f.poll(t, cursors)
	if got := strings.Join(c.distinct(), ","); got != "A-1" {
		t.Fatalf("emitted %s, want A-1", got)
	}
	for _, b := range c.ofSource(detector.SourcePriceServer) {
		if len(b.Items) != 0 {
			t.Errorf("the server-clock source emitted %+v in a site on the server's offset", b)
		}
	}
	if got := f.det.SeenRows(detector.SourcePriceServer); got != 0 {
		t.Errorf("the server-clock source remembers %d rows: it read some", got)
	}
	time.Sleep(400 * time.Millisecond) // a quarter of the overlap
	before := cursors[detector.SourcePriceServer]
	var n int
	moved := false
	_, err := f.det.Poll(ctx, cursors, func(ctx context.Context, b detector.Batch) error {
		if b.Source == detector.SourcePriceServer {
			n++
			moved = before.Modified < b.Cursor.Modified
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || !moved {
		t.Errorf("%d server-clock batches (moved %v): want one that moves the idle cursor on", n, moved)
	}
}

// A change of a Price List (ORM save: enabled, selling, currency decide which
// of its rows are sent), a Price List rename (Item Price.price_list rewritten
// without modified) and an Item Group rename (tabItem.item_group rewritten
// without modified) send every item they concern again.
func TestPollListAndGroupChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, f *fixture)
		want   string
	}{
		{"price list disabled", func(t *testing.T, f *fixture) {
			// frappe.db.set_value("Price List", "Wholesale", "enabled", 0): modified
			// moves, on_update (and its NOW() update of the Item Prices) does not run.
			execSQL(t, f, "UPDATE `tabPrice List` SET enabled = 0, modified = ?, modified_by = 'Administrator' WHERE name = 'Wholesale'", siteNow(f))
		}, "A-1,A-2"},
		{"price list saved", func(t *testing.T, f *fixture) {
			must(t, f.site.SavePriceList(context.Background(), erpnext.PriceList{Name: "Wholesale", Currency: "KES", Enabled: true, Selling: true}))
		}, "A-1,A-2"},
		{"price list renamed", func(t *testing.T, f *fixture) {
			execSQL(t, f, "UPDATE `tabPrice List` SET name = 'Trade', price_list_name = 'Trade' WHERE name = 'Wholesale'")
			execSQL(t, f, "UPDATE `tabItem Price` SET price_list = 'Trade' WHERE price_list = 'Wholesale'")
			editComment(t, f, "Price List", "Trade", "renamed from <strong>Wholesale</strong> to <strong>Trade</strong>")
		}, "A-1,A-2"},
		{"item group renamed", func(t *testing.T, f *fixture) {
			execSQL(t, f, "UPDATE `tabItem Group` SET name = 'Hot Drinks', item_group_name = 'Hot Drinks' WHERE name = 'Drinks'")
			execSQL(t, f, "UPDATE `tabItem` SET item_group = 'Hot Drinks' WHERE item_group = 'Drinks'")
			editComment(t, f, "Item Group", "Hot Drinks", "renamed from <strong>Drinks</strong> to <strong>Hot Drinks</strong>")
		}, "B-1,B-2"},
		{"other comment", func(t *testing.T, f *fixture) {
			execSQL(t, f, "INSERT INTO `tabComment` (name, creation, modified, comment_type, reference_doctype, reference_name, content) "+
				"VALUES (?, ?, ?, 'Comment', 'Price List', 'Wholesale', '<strong>nice</strong> <strong>list</strong>')", hashName(t), siteNow(f), siteNow(f))
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, detector.Config{})
			execSQL(t, f, "INSERT INTO `tabItem Group` (name, item_group_name, parent_item_group, lft, rgt, modified) VALUES ('Drinks', 'Drinks', 'All Item Groups', 2, 3, ?)", siteNow(f))
			saveItems(t, f, erpnext.Item{Code: "A-1"}, erpnext.Item{Code: "A-2"}, erpnext.Item{Code: "B-1", Group: "Drinks"},
				erpnext.Item{Code: "B-2", Group: "Drinks"}, erpnext.Item{Code: "C-1"})
			setPrice(t, f, "A-1", "Wholesale", "1")
			setPrice(t, f, "A-2", "Wholesale", "2")
			setPrice(t, f, "B-1", "Standard Selling", "3")
			setPrice(t, f, "C-1", "Standard Selling", "4")
			cursors := settled(t, f)
			tc.change(t, f)
			c, cursors := f.poll(t, cursors)
			if got := strings.Join(c.distinct(), ","); got != tc.want {
				t.Fatalf("emitted %s, want %s", got, tc.want)
			}
			c, _ = f.poll(t, cursors)
			if got := c.codes(); len(got) != 0 {
				t.Errorf("the next poll emitted %v again", got)
			}
		})
	}
}

// editComment writes the Comment that rename_doc adds: comment_type 'Edit'
// on the new name, content as given (frappe.bold names, HTML-escaped).
func editComment(t *testing.T, f *fixture, doctype, newName, content string) string {
	t.Helper()
	name, now := hashName(t), siteNow(f)
	execSQL(t, f, "INSERT INTO `tabComment` (name, creation, modified, modified_by, owner, comment_type, comment_email, "+
		"reference_doctype, reference_name, content) VALUES (?, ?, ?, 'Administrator', 'Administrator', 'Edit', 'admin@example.com', ?, ?, ?)",
		name, now, now, doctype, newName, content)
	return name
}

// A Price List save names every item with a price in it. They are built and
// emitted PageSize at a time; the cursor moves only with the last batch, so
// an emit that fails on the way leaves it where it was and the next poll
// sends the whole list again.
func TestPollLargeListInChunks(t *testing.T) {
	ctx := context.Background()
	const pageSize = 7
	f := newFixture(t, detector.Config{PageSize: pageSize})
	if err := f.site.Seed(ctx, 80); err != nil {
		t.Fatal(err)
	}
	want := itemsWithPriceIn(t, f, "Wholesale")
	if len(want) < 4*pageSize {
		t.Fatalf("only %d items with a Wholesale price", len(want))
	}
	cursors := settled(t, f)
	before := cursors[detector.SourcePriceList]
	execSQL(t, f, "UPDATE `tabPrice List` SET selling = 1, modified = ? WHERE name = 'Wholesale'", siteNow(f))

	// An emit that fails on the third batch of the list.
	diskFull := errors.New("disk full")
	calls := 0
	next, err := f.det.Poll(ctx, cursors, func(ctx context.Context, b detector.Batch) error {
		if b.Source == detector.SourcePriceList && len(b.Items) > 0 {
			if calls++; calls == 3 {
				return diskFull
			}
		}
		return nil
	})
	if !errors.Is(err, diskFull) {
		t.Fatalf("Poll returned %v, want the emit's error", err)
	}
	if next[detector.SourcePriceList] != before {
		t.Fatalf("price list cursor %+v after a failed chunk, want it unmoved at %+v", next[detector.SourcePriceList], before)
	}

	c, after := f.poll(t, next)
	batches := c.ofSource(detector.SourcePriceList)
	if len(batches) < 4 {
		t.Fatalf("%d batches, want the list's %d items in batches of at most %d", len(batches), len(want), pageSize)
	}
	var got []string
	for i, b := range batches {
		if len(b.Items) > pageSize {
			t.Errorf("batch %d holds %d items, more than PageSize %d", i, len(b.Items), pageSize)
		}
		last := i == len(batches)-1
		if moved := b.Cursor != before; moved != last {
			t.Errorf("batch %d of %d: cursor %+v (before the page: %+v); want it moved by the last batch only", i+1, len(batches), b.Cursor, before)
		}
		for _, it := range b.Items {
			got = append(got, it.Code)
		}
	}
	slices.Sort(got)
	if strings.Join(slices.Compact(got), ",") != strings.Join(want, ",") {
		t.Errorf("emitted %v, want the items with a Wholesale price %v", got, want)
	}
	if after[detector.SourcePriceList] == before {
		t.Errorf("the cursor did not move")
	}
}

// Files attached to an Item and the Item's Website Item name the item: on
// insert, on change and through their Deleted Document.
func TestPollFilesAndWebsiteItems(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, f *fixture)
		want   string
	}{
		{"file attached", func(t *testing.T, f *fixture) { must(t, f.site.AttachFile(ctx, "A-1", "/files/new.jpg", false)) }, "A-1"},
		{"file attached elsewhere", func(t *testing.T, f *fixture) { attachFile(t, f, "Customer", "A-2", "f1") }, ""},
		{"file made private", func(t *testing.T, f *fixture) {
			// File.save with is_private changed: the file moves, file_url follows
			// (the Item changes too only when the file is in one of its fields).
			execSQL(t, f, "UPDATE `tabFile` SET is_private = 1, file_url = '/private/files/old.jpg', modified = ? WHERE attached_to_name = 'A-2'", siteNow(f))
		}, "A-2"},
		{"file removed", func(t *testing.T, f *fixture) { must(t, f.site.RemoveFile(ctx, "A-2", "/files/old.jpg")) }, "A-2"},
		{"file of another doctype removed", func(t *testing.T, f *fixture) {
			deleteDoc(t, f, "File", "f9", `{"attached_to_doctype": "Customer", "attached_to_name": "A-2", "doctype": "File", "name": "f9"}`)
		}, ""},
		{"website item published", func(t *testing.T, f *fixture) { must(t, f.site.PublishWebsiteItem(ctx, "A-1")) }, "A-1"},
		{"website item unpublished", func(t *testing.T, f *fixture) { must(t, f.site.UnpublishWebsiteItem(ctx, "A-2")) }, "A-2"},
		{"website item deleted", func(t *testing.T, f *fixture) {
			// delete_doc's rows only: WebsiteItem.on_trash's set_value on the Item
			// (which the tabItem source sees) is left out to see the Deleted Document alone.
			var name string
			if err := f.db.QueryRow("SELECT name FROM `tabWebsite Item` WHERE item_code = 'A-2'").Scan(&name); err != nil {
				t.Fatal(err)
			}
			deleteDoc(t, f, "Website Item", name, `{"doctype": "Website Item", "item_code": "A-2", "name": "`+name+`", "published": 1}`)
			execSQL(t, f, "DELETE FROM `tabWebsite Item` WHERE name = ?", name)
		}, "A-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, detector.Config{})
			saveItems(t, f, erpnext.Item{Code: "A-1"}, erpnext.Item{Code: "A-2"})
			must(t, f.site.AttachFile(ctx, "A-2", "/files/old.jpg", false))
			must(t, f.site.PublishWebsiteItem(ctx, "A-2"))
			cursors := settled(t, f)
			tc.change(t, f)
			c, _ := f.poll(t, cursors)
			if got := strings.Join(c.distinct(), ","); got != tc.want {
				t.Fatalf("emitted %q, want %q", got, tc.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// attachFile is upload_file's tabFile row, for any doctype.
func attachFile(t *testing.T, f *fixture, doctype, docname, name string) {
	t.Helper()
	now := siteNow(f)
	execSQL(t, f, "INSERT INTO `tabFile` (name, creation, modified, owner, file_name, is_private, file_url, folder, attached_to_doctype, attached_to_name) "+
		"VALUES (?, ?, ?, 'Administrator', 'old.jpg', 0, '/files/old.jpg', 'Home/Attachments', ?, ?)", name, now, now, doctype, docname)
}

// publish is make_website_item: one Website Item row.
func publish(t *testing.T, f *fixture, name, code string) {
	t.Helper()
	now := siteNow(f)
	execSQL(t, f, "INSERT INTO `tabWebsite Item` (name, creation, modified, owner, web_item_name, published, item_code, item_name, item_group, stock_uom) "+
		"VALUES (?, ?, ?, 'Administrator', ?, 1, ?, ?, 'Products', 'Nos')", name, now, now, code, code, code)
}

// deleteDoc is add_to_deleted_document.
func deleteDoc(t *testing.T, f *fixture, doctype, name, data string) {
	t.Helper()
	now := siteNow(f)
	execSQL(t, f, "INSERT INTO `tabDeleted Document` (name, creation, modified, owner, deleted_name, deleted_doctype, restored, data) VALUES (?, ?, ?, 'Administrator', ?, ?, 0, ?)",
		hashName(t), now, now, name, doctype, data)
}

// Without webshop there is no tabWebsite Item: that source reads nothing and
// the others work.
func TestPollWithoutWebsiteItemTable(t *testing.T) {
	f := newZoneFixture(t, detector.Config{}, siteTZ, func(db *sql.DB) {
		if _, err := db.Exec("DROP TABLE `tabWebsite Item`"); err != nil {
			t.Fatal(err)
		}
	})
	saveItems(t, f, erpnext.Item{Code: "A-1"})
	cursors := settled(t, f)
	if _, ok := cursors[detector.SourceWebsiteItem]; ok {
		t.Errorf("a start cursor for %s without its table", detector.SourceWebsiteItem)
	}
	deleteDoc(t, f, "Website Item", "WEB-ITM-0001", `{"doctype": "Website Item", "item_code": "A-1", "name": "WEB-ITM-0001"}`)
	c, _ := f.poll(t, cursors)
	if got := strings.Join(c.distinct(), ","); got != "A-1" {
		t.Errorf("emitted %q, want A-1 (from its Deleted Document)", got)
	}
}

// A template's price is its variants' (they inherit it): a change of it, in
// site time or by NOW(), and its delete send the variants too.
func TestPollTemplatePriceResendsVariants(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, f *fixture)
	}{
		{"price saved", func(t *testing.T, f *fixture) { setPrice(t, f, "T-1", "Wholesale", "9") }},
		{"price list saved (NOW())", func(t *testing.T, f *fixture) { priceListSave(t, f, "Wholesale") }},
		{"price deleted", func(t *testing.T, f *fixture) {
			if err := f.site.DeletePrice(ctx, "T-1", "Wholesale"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, detector.Config{})
			saveItems(t, f, erpnext.Item{Code: "T-1", HasVariants: true}, erpnext.Item{Code: "T-1-RED", VariantOf: "T-1"},
				erpnext.Item{Code: "T-1-BLUE", VariantOf: "T-1"}, erpnext.Item{Code: "U-1"})
			setPrice(t, f, "T-1", "Wholesale", "5")
			cursors := settled(t, f)
			tc.change(t, f)
			c, _ := f.poll(t, cursors)
			if got, want := strings.Join(c.distinct(), ","), "T-1,T-1-BLUE,T-1-RED"; got != want {
				t.Fatalf("emitted %s, want %s", got, want)
			}
		})
	}
}

// An Item Price moved from item A to item B (item_code edited) is found under
// B; A, which lost the price, is found through the row's Version. Versions
// older than the poll's window are not read.
func TestPollPriceMovedToAnotherItem(t *testing.T) {
	f := newFixture(t, detector.Config{Overlap: time.Minute})
	saveItems(t, f, erpnext.Item{Code: "A-1"}, erpnext.Item{Code: "B-1"}, erpnext.Item{Code: "C-1"})
	setPrice(t, f, "A-1", "Wholesale", "5")
	var row string
	if err := f.db.QueryRow("SELECT name FROM `tabItem Price` WHERE item_code = 'A-1'").Scan(&row); err != nil {
		t.Fatal(err)
	}
	// An old Version of the row (C-1 -> A-1 a day ago), long handed out.
	version(t, f, row, shift(t, siteNow(f), -24*time.Hour), `[["item_code", "C-1", "A-1"]]`)
	cursors := settled(t, f)

	now := siteNow(f)
	execSQL(t, f, "UPDATE `tabItem Price` SET item_code = 'B-1', item_name = 'B-1', modified = ? WHERE name = ?", now, row)
	version(t, f, row, shift(t, now, time.Millisecond), `[["item_code", "A-1", "B-1"], ["price_list_rate", 5.0, 6.0]]`)
	c, _ := f.poll(t, cursors)
	if got, want := strings.Join(c.distinct(), ","), "A-1,B-1"; got != want {
		t.Fatalf("emitted %s, want %s", got, want)
	}
}

// version is save_version: a Version row of an Item Price save.
func version(t *testing.T, f *fixture, docname, modified, changed string) {
	t.Helper()
	data := `{"added": [], "changed": ` + changed + `, "data_import": null, "removed": [], "row_changed": [], "updater_reference": null}`
	execSQL(t, f, "INSERT INTO `tabVersion` (name, creation, modified, owner, ref_doctype, docname, data) VALUES (?, ?, ?, 'Administrator', 'Item Price', ?, ?)",
		hashName(t), modified, modified, docname, data)
}

// The queries of every source read only the index on modified, with no
// filesort; the expansions of a price list and an item group seek their
// index to the page's start, and the lookups of variants, Versions and
// merges read their indexes. As on a real site most rows are older than the
// window; it is checked where the recent rows are and where there are none.
func TestSourceQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	f.site.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if err := f.site.Seed(ctx, 300); err != nil {
		t.Fatal(err)
	}
	old := f.site.Format(f.site.Now())
	for _, q := range []string{
		"INSERT INTO `tabComment` (name, modified, comment_type, reference_doctype, reference_name, content) " +
			"SELECT CONCAT('c', seq), ?, 'Info', 'Item', CONCAT('ITEM-', seq), 'x' FROM seq_1_to_300",
		"INSERT INTO `tabFile` (name, modified, file_url, attached_to_doctype, attached_to_name) " +
			"SELECT CONCAT('f', seq), ?, '/files/x.jpg', 'Item', CONCAT('ITEM-', seq) FROM seq_1_to_300",
		"INSERT INTO `tabWebsite Item` (name, modified, item_code) SELECT CONCAT('WEB-ITM-', seq), ?, CONCAT('ITEM-', seq) FROM seq_1_to_300",
		"INSERT INTO `tabPrice List` (name, price_list_name, modified) SELECT CONCAT('PL ', seq), CONCAT('PL ', seq), ? FROM seq_1_to_300",
		"INSERT INTO `tabVersion` (name, modified, ref_doctype, docname, data) SELECT CONCAT('v', seq), ?, 'Item Price', CONCAT('p', seq), '{}' FROM seq_1_to_300",
		"INSERT INTO `tabDeleted Document` (name, modified, deleted_doctype, deleted_name, data) " +
			"SELECT CONCAT('d', seq), ?, 'File', CONCAT('f', seq), '{}' FROM seq_1_to_300",
	} {
		execSQL(t, f, q, old)
	}
	f.site.Now = time.Now
	saveItems(t, f, erpnext.Item{Code: "ITEM-00001", Name: "recent"})
	setPrice(t, f, "ITEM-00001", "Wholesale", "1")
	priceListSave(t, f, "Standard Buying")
	editComment(t, f, "Item", "ITEM-00001", "x")
	attachFile(t, f, "Item", "ITEM-00001", "recent")
	publish(t, f, "WEB-ITM-RECENT", "ITEM-00001")
	execSQL(t, f, "UPDATE `tabPrice List` SET modified = ? WHERE name = 'Wholesale'", siteNow(f))
	for _, table := range []string{"tabItem", "tabItem Price", "tabComment", "tabFile", "tabWebsite Item", "tabPrice List", "tabVersion", "tabDeleted Document"} {
		execSQL(t, f, "ANALYZE TABLE `"+table+"`")
	}
	now, err := f.det.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	windows := [][2]string{
		{"2024-01-01 00:00:00.000000", "2024-01-01 00:05:00.000000"},
		{shift(t, now, -5*time.Minute), now},
	}
	for _, source := range detector.Sources() {
		for _, w := range windows {
			for _, pq := range detector.SourceQueries(source, w[0], w[1]) {
				t.Run(source+"/"+pq.Name+"/"+w[0], func(t *testing.T) {
					plan := explain(t, f.db, pq.SQL, pq.Args...)
					if plan["key"] != "modified" || plan["type"] != "range" {
						t.Errorf("plan %v: want type=range key=modified", plan)
					}
					if !strings.Contains(plan["Extra"], "Using index") || strings.Contains(plan["Extra"], "filesort") ||
						strings.Contains(plan["Extra"], "temporary") {
						t.Errorf("plan Extra %q: want an index-only scan without filesort or temporary table", plan["Extra"])
					}
				})
			}
		}
	}
	for _, q := range detector.ExpansionQueries() {
		t.Run(q.Name, func(t *testing.T) {
			plan := explain(t, f.db, q.SQL, q.Args...)
			if plan["key"] != q.Key || strings.Contains(plan["Extra"], "filesort") || strings.Contains(plan["Extra"], "temporary") {
				t.Errorf("plan %v: want key=%s without filesort or temporary table", plan, q.Key)
			}
		})
	}
}
