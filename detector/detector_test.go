package detector_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

func TestMain(m *testing.M) { os.Exit(mariadbtest.RunTests(m)) }

const siteTZ = "Asia/Kolkata"

type fixture struct {
	db   *sql.DB
	site *erpnext.Site
	det  *detector.Detector
}

func newFixture(t testing.TB, cfg detector.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn, err := detector.PrepareDSN(mariadbtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn+"&multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := erpnext.CreateSchema(ctx, db, siteTZ); err != nil {
		t.Fatal(err)
	}
	site, err := erpnext.NewSite(db, siteTZ)
	if err != nil {
		t.Fatal(err)
	}
	det, err := detector.New(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, site: site, det: det}
}

// collector records what the detector emits.
type collector struct {
	batches []detector.Batch
	fail    error
}

func (c *collector) emit(ctx context.Context, b detector.Batch) error {
	if c.fail != nil {
		return c.fail
	}
	c.batches = append(c.batches, b)
	return nil
}

func (c *collector) codes() []string {
	var out []string
	for _, b := range c.batches {
		for _, it := range b.Items {
			out = append(out, it.Code)
		}
	}
	sort.Strings(out)
	return out
}

func (c *collector) item(code string) (detector.Item, bool) {
	var found detector.Item
	ok := false
	for _, b := range c.batches {
		for _, it := range b.Items {
			if it.Code == code {
				found, ok = it, true
			}
		}
	}
	return found, ok
}

func (f *fixture) poll(t *testing.T, cursors map[string]detector.Cursor) (*collector, map[string]detector.Cursor) {
	t.Helper()
	c := &collector{}
	next, err := f.det.Poll(context.Background(), cursors, c.emit)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return c, next
}

func (f *fixture) startCursors(t *testing.T) map[string]detector.Cursor {
	t.Helper()
	cs, err := f.det.StartCursors(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// member is the canonical JSON of one member of an item's content; it fails
// the test when the item has no such member.
func member(t *testing.T, it detector.Item, name string) string {
	t.Helper()
	if it.Content == nil {
		t.Fatalf("item %s has no content", it.Code)
	}
	b, ok := it.Content.Value(name)
	if !ok {
		t.Fatalf("item %s has no member %q", it.Code, name)
	}
	return string(b)
}

func TestBuildWholeItem(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{
		Selection: detector.Selection{PriceLists: []string{"Standard Selling", "Wholesale"}, Warehouses: []string{"Stores - AC", "Finished Goods - AC"}},
		SiteURL:   "https://erp.example.com/",
	})
	it := erpnext.Item{
		Code: "CAFÉ-1", Name: "Café <Deluxe> & Co", Group: "Drinks", Brand: "Ньютон", Description: "<p>Strong & dark</p>",
		StockUOM: "Nos", Image: "/files/café photo.jpg",
		Barcodes: []erpnext.Barcode{{Barcode: "6001234500011", Type: "EAN"}, {Barcode: "0012345", Type: "UPC-A", UOM: "Box"}},
	}
	if err := f.site.SaveItem(ctx, it); err != nil {
		t.Fatal(err)
	}
	for _, p := range []erpnext.Price{
		{PriceList: "Standard Selling", Currency: "KES", Rate: "19.990000000"},
		{PriceList: "Wholesale", Currency: "KES", Rate: "99999999999.999999999"},
		{PriceList: "Standard Buying", Currency: "KES", Rate: "10.000000000"}, // not selected
	} {
		if err := f.site.SetPrice(ctx, it.Code, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []erpnext.Stock{
		{Warehouse: "Stores - AC", ActualQty: "10.500000000", ReservedQty: "2.000000000", ProjectedQty: "8.500000000"},
		{Warehouse: "Finished Goods - AC", ActualQty: "0.100000000", ReservedQty: "0.000000000", ProjectedQty: "0.200000000"},
		{Warehouse: "Transit - AC", ActualQty: "1000.000000000", ReservedQty: "0", ProjectedQty: "0"}, // not selected
	} {
		if err := f.site.SetStock(ctx, it.Code, s); err != nil {
			t.Fatal(err)
		}
	}
	items, err := f.det.Build(ctx, []string{it.Code, "NO-SUCH-ITEM", it.Code})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 {
		t.Fatalf("Build returned %d items, want 2 (one per distinct code): %+v", len(items), items)
	}
	// SetPrice fills uom from the item and valid_from with today, as ERPNext does.
	today := `"` + f.site.Now().In(f.site.TZ).Format("2006-01-02") + `"`
	var got, gone detector.Item
	for _, x := range items {
		if x.Code == it.Code {
			got = x
		} else {
			gone = x
		}
	}
	if !gone.Deleted || gone.Code != "NO-SUCH-ITEM" || gone.Content != nil {
		t.Errorf("missing item = %+v, want Deleted", gone)
	}
	want := map[string]string{
		"item_code":     `"CAFÉ-1"`,
		"item_name":     `"Café <Deluxe> & Co"`,
		"item_group":    `"Drinks"`,
		"brand":         `"Ньютон"`,
		"description":   `"<p>Strong & dark</p>"`,
		"disabled":      `false`,
		"is_stock_item": `true`,
		"image":         `"https://erp.example.com/files/caf%C3%A9%20photo.jpg"`,
		"barcodes":      `[{"barcode":"6001234500011","barcode_type":"EAN","uom":null},{"barcode":"0012345","barcode_type":"UPC-A","uom":"Box"}]`,
		"prices": `[{"batch_no":null,"buying":false,"currency":"KES","customer":null,"price_list":"Standard Selling","rate":19.99,"selling":true,"supplier":null,"uom":"Nos","valid_from":` + today + `,"valid_upto":null},` +
			`{"batch_no":null,"buying":false,"currency":"KES","customer":null,"price_list":"Wholesale","rate":"99999999999.999999999","selling":true,"supplier":null,"uom":"Nos","valid_from":` + today + `,"valid_upto":null}]`,
		"stock": `[{"actual_qty":0.1,"available_qty":0.1,"is_group":false,"projected_qty":0.2,"reserved_qty":0,"warehouse":"Finished Goods - AC"},` +
			`{"actual_qty":10.5,"available_qty":8.5,"is_group":false,"projected_qty":8.5,"reserved_qty":2,"warehouse":"Stores - AC"}]`,
		"stock_total": `{"actual_qty":10.6,"available_qty":8.6,"projected_qty":8.7,"reserved_qty":2}`,
	}
	for k, w := range want {
		if g := member(t, got, k); g != w {
			t.Errorf("%s = %s, want %s", k, g, w)
		}
	}
	var mod string
	if err := json.Unmarshal([]byte(member(t, got, "modified")), &mod); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, mod); err != nil || !strings.HasSuffix(mod, "+05:30") {
		t.Errorf("modified = %q, want RFC 3339 with the site's offset +05:30", mod)
	}
}

func TestPollFindsEachKindOfChange(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	if err := f.site.Seed(ctx, 20); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors) // the seed is inside the overlap window: take it out of the way
	tests := []struct {
		name   string
		change func() error
		want   []string
		delete bool
	}{
		{"price change", func() error {
			return f.site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "42.000000000"})
		}, []string{"ITEM-00001"}, false},
		{"stock change", func() error {
			return f.site.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "3", ReservedQty: "0", ProjectedQty: "3"})
		}, []string{"ITEM-00002"}, false},
		{"item update", func() error {
			return f.site.SaveItem(ctx, erpnext.Item{Code: "ITEM-00003", Name: "Renamed label", Group: "Products", StockUOM: "Nos"})
		}, []string{"ITEM-00003"}, false},
		{"new item", func() error {
			return f.site.SaveItem(ctx, erpnext.Item{Code: "NEW-1", Name: "日本茶", Group: "Tea", StockUOM: "Nos"})
		}, []string{"NEW-1"}, false},
		{"price delete", func() error { return f.site.DeletePrice(ctx, "ITEM-00004", "Standard Selling") }, []string{"ITEM-00004"}, false},
		{"item delete", func() error { return f.site.DeleteItem(ctx, "ITEM-00005") }, []string{"ITEM-00005"}, true},
		{"nothing", func() error { return nil }, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			var c *collector
			c, cursors = f.poll(t, cursors)
			if got := c.codes(); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("poll emitted %v, want %v", got, tc.want)
			}
			for _, code := range tc.want {
				it, _ := c.item(code)
				if it.Deleted != tc.delete {
					t.Errorf("%s Deleted = %v, want %v", code, it.Deleted, tc.delete)
				}
			}
		})
	}
}

// A transaction that stamps `modified` first but commits after a later one
// must still be seen: ERPNext sets modified before COMMIT.
func TestPollCatchesLateCommit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{Overlap: time.Minute})
	if err := f.site.Seed(ctx, 5); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)

	now, err := f.det.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := time.Parse("2006-01-02 15:04:05.000000", now)
	early := base.Add(-10 * time.Second).Format("2006-01-02 15:04:05.000000")
	late := base.Format("2006-01-02 15:04:05.000000")

	slow, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback()
	if _, err := slow.ExecContext(ctx, "UPDATE `tabItem Price` SET price_list_rate = 1.25, modified = ? WHERE item_code = 'ITEM-00001'", early); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(ctx, "UPDATE `tabItem Price` SET price_list_rate = 2.5, modified = ? WHERE item_code = 'ITEM-00002'", late); err != nil {
		t.Fatal(err)
	}
	c, cursors := f.poll(t, cursors)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00002" {
		t.Fatalf("first poll emitted %v, want [ITEM-00002]", got)
	}
	if cursors[detector.SourcePrice].Modified < late {
		t.Fatalf("price cursor %v did not advance past %s", cursors[detector.SourcePrice], late)
	}
	if err := slow.Commit(); err != nil {
		t.Fatal(err)
	}
	c, cursors = f.poll(t, cursors)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00001" {
		t.Fatalf("poll after the late commit emitted %v, want [ITEM-00001]", got)
	}
	c, _ = f.poll(t, cursors)
	if got := c.codes(); len(got) != 0 {
		t.Fatalf("a third poll emitted %v again", got)
	}
}

// Many rows with the same `modified` (a bulk UPDATE) span several pages; the
// (modified, name) keyset must hand out each exactly once.
func TestPollManyRowsSameModified(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{PageSize: 50})
	if err := f.site.Seed(ctx, 333); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)
	now, err := f.det.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(ctx, "UPDATE `tabItem Price` SET price_list_rate = price_list_rate + 1, modified = ? WHERE price_list = 'Standard Selling' "+
		"AND item_code NOT IN (SELECT name FROM `tabItem` WHERE has_variants = 1)", now); err != nil {
		t.Fatal(err)
	}
	var want int
	if err := f.db.QueryRowContext(ctx, "SELECT COUNT(DISTINCT item_code) FROM `tabItem Price` WHERE price_list = 'Standard Selling' "+
		"AND item_code NOT IN (SELECT name FROM `tabItem` WHERE has_variants = 1)").Scan(&want); err != nil {
		t.Fatal(err)
	}
	c, _ := f.poll(t, cursors)
	got := c.codes()
	seen := map[string]int{}
	for _, code := range got {
		seen[code]++
	}
	if len(seen) != want {
		t.Fatalf("emitted %d distinct items, want %d", len(seen), want)
	}
	if len(c.batches) < 2 {
		t.Fatalf("expected several pages, got %d batches", len(c.batches))
	}
	for code, n := range seen {
		if n > 1 {
			t.Errorf("%s emitted %d times", code, n)
		}
	}
}

// A row stamped in the future (a wrong clock) is sent, but must not move the
// cursor past the database's now and hide rows written later.
func TestPollFutureRowDoesNotSkipLaterRows(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{Overlap: time.Second})
	if err := f.site.Seed(ctx, 3); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)
	if _, err := f.db.ExecContext(ctx, "UPDATE `tabBin` SET actual_qty = 99, modified = '2099-01-01 00:00:00.000000' WHERE item_code = 'ITEM-00001'"); err != nil {
		t.Fatal(err)
	}
	c, cursors := f.poll(t, cursors)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00001" {
		t.Fatalf("emitted %v, want [ITEM-00001]", got)
	}
	if m := cursors[detector.SourceBin].Modified; m >= "2099" {
		t.Fatalf("bin cursor jumped to the future row: %s", m)
	}
	time.Sleep(20 * time.Millisecond)
	if err := f.site.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "5", ReservedQty: "0", ProjectedQty: "5"}); err != nil {
		t.Fatal(err)
	}
	c, _ = f.poll(t, cursors)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00002" {
		t.Fatalf("after the future row, emitted %v, want [ITEM-00002]", got)
	}
}

// The poll's queries must be index range scans on `modified` that never read
// the rows: the driver's nanosecond time parameters would defeat them, which
// is why cursors are passed as strings. As on a real site most rows were
// written long before the window; the window is checked where the recent rows
// are and where there are none.
func TestPollQueryUsesModifiedIndex(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	f.site.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if err := f.site.Seed(ctx, 200); err != nil {
		t.Fatal(err)
	}
	for i := 101; i <= 200; i++ { // Deleted Document rows, old and (below) recent
		if i == 181 {
			f.site.Now = time.Now
		}
		if i%50 >= 10 && i%50 <= 13 { // templates and variants: deleting one deletes others
			continue
		}
		if err := f.site.DeleteItem(ctx, fmt.Sprintf("ITEM-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 20; i++ { // recent changes, inside the window
		code := fmt.Sprintf("ITEM-%05d", i)
		if err := f.site.SaveItem(ctx, erpnext.Item{Code: code, Name: "Recent " + code, Group: "Products", StockUOM: "Nos"}); err != nil {
			t.Fatal(err)
		}
		if err := f.site.SetPrice(ctx, code, erpnext.Price{PriceList: "Standard Buying", Currency: "KES", Rate: "1"}); err != nil {
			t.Fatal(err)
		}
		if err := f.site.SetStock(ctx, code, erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "1", ReservedQty: "0", ProjectedQty: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	now, err := f.det.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := time.Parse("2006-01-02 15:04:05.000000", now)
	windows := [][2]string{
		{"2024-01-01 00:00:00.000000", "2024-01-01 00:05:00.000000"},
		{base.Add(-5 * time.Minute).Format("2006-01-02 15:04:05.000000"), now},
	}
	for _, table := range []string{"tabItem", "tabItem Price", "tabBin", "tabDeleted Document"} {
		for _, w := range windows {
			for _, pq := range detector.PollQueries(table, w[0], w[1]) {
				t.Run(table+"/"+pq.Name+"/"+w[0], func(t *testing.T) {
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
}

// TestPageQueriesSeekIntoLargeGroup: a bulk UPDATE gives thousands of rows one
// modified. A page from the middle of such a group must read about a page of
// rows, not every row before it: otherwise paging through the group is
// quadratic. ANALYZE runs each page query and reports the rows it read.
func TestPageQueriesSeekIntoLargeGroup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	if err := f.site.Seed(ctx, 3000); err != nil {
		t.Fatal(err)
	}
	const modified = "2026-01-01 00:00:00.000001"
	if _, err := f.db.ExecContext(ctx, "UPDATE `tabItem Price` SET modified = ?", modified); err != nil {
		t.Fatal(err)
	}
	var total int
	var after string
	if err := f.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `tabItem Price`").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if err := f.db.QueryRowContext(ctx, "SELECT name FROM `tabItem Price` ORDER BY name LIMIT 1 OFFSET ?", total*2/3).Scan(&after); err != nil {
		t.Fatal(err)
	}
	const limit = 100
	readRows := regexp.MustCompile(`"r_rows": ([0-9.]+)`)
	for _, pq := range detector.PageQueries("tabItem Price", modified, after, limit) {
		t.Run(pq.Name, func(t *testing.T) {
			var plan string
			if err := f.db.QueryRowContext(ctx, "ANALYZE FORMAT=JSON "+pq.SQL, pq.Args...).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			m := readRows.FindStringSubmatch(plan)
			if m == nil {
				t.Fatalf("no r_rows in %s", plan)
			}
			if n, _ := strconv.ParseFloat(m[1], 64); n > 2*limit {
				t.Errorf("a page of %d from row %d of a group of %d read %v rows: it does not seek to the cursor\n%s", limit, total*2/3, total, n, plan)
			}
		})
	}
}

// explain returns the first row of EXPLAIN q by column name.
func explain(t *testing.T, db *sql.DB, q string, args ...any) map[string]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "EXPLAIN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("EXPLAIN returned nothing")
	}
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
	return plan
}

// A failed emit must not count the rows as done: the next poll hands them
// out again.
func TestPollEmitFailureRetries(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	if err := f.site.Seed(ctx, 3); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)
	if err := f.site.SetPrice(ctx, "ITEM-00003", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "7"}); err != nil {
		t.Fatal(err)
	}
	failing := &collector{fail: fmt.Errorf("disk full")}
	next, err := f.det.Poll(ctx, cursors, failing.emit)
	if err == nil {
		t.Fatal("Poll returned nil although emit failed")
	}
	if next[detector.SourcePrice] != cursors[detector.SourcePrice] {
		t.Fatalf("price cursor moved on a failed emit: %v -> %v", cursors[detector.SourcePrice], next[detector.SourcePrice])
	}
	c, _ := f.poll(t, next)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00003" {
		t.Fatalf("retry emitted %v, want [ITEM-00003]", got)
	}
}

func TestSnapshotStreamsEveryItemOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{PageSize: 64})
	const n = 500
	if err := f.site.Seed(ctx, n); err != nil {
		t.Fatal(err)
	}
	// Stop after the third page, then resume from its After: nothing missed, nothing twice.
	var first []detector.Batch
	stop := fmt.Errorf("stop")
	err := f.det.Snapshot(ctx, "", func(ctx context.Context, b detector.Batch) error {
		first = append(first, b)
		if len(first) == 3 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("Snapshot returned %v, want the emit error", err)
	}
	c := &collector{batches: first}
	if err := f.det.Snapshot(ctx, first[2].After, c.emit); err != nil {
		t.Fatal(err)
	}
	got := c.codes()
	if len(got) != n {
		t.Fatalf("snapshot emitted %d items, want %d", len(got), n)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("%s emitted twice", got[i])
		}
	}
	for _, b := range c.batches {
		if len(b.Items) > 64 {
			t.Fatalf("a batch held %d items, more than the page size", len(b.Items))
		}
	}
}

func TestNewRejectsWrongDatabase(t *testing.T) {
	ctx := context.Background()
	dsn, err := detector.PrepareDSN(mariadbtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = detector.New(ctx, db, detector.Config{})
	var se *detector.SiteError
	if err == nil || !strings.Contains(err.Error(), "not an ERPNext site") || !errors.As(err, &se) {
		t.Fatalf("New on an empty database: %v, want a SiteError naming the missing tables", err)
	}
}

func TestPrepareDSN(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"u:p@tcp(127.0.0.1:3306)/site", ""},
		{"u:p@tcp(127.0.0.1:3306)/", "names no database"},
		{"not a dsn", "not a go-sql-driver DSN"},
	}
	for _, tc := range tests {
		out, err := detector.PrepareDSN(tc.in)
		if tc.wantErr == "" {
			if err != nil || !strings.Contains(out, "interpolateParams=true") {
				t.Errorf("PrepareDSN(%q) = %q, %v", tc.in, out, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("PrepareDSN(%q) error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
	if r := detector.RedactDSN("u:hunter2@tcp(127.0.0.1:3306)/site"); strings.Contains(r, "hunter2") {
		t.Errorf("RedactDSN kept the password: %s", r)
	}
}

// Rows visible in the overlap window when following starts are read by the
// initial snapshot, so the first poll must not rebuild them; a row that
// commits later with an earlier modified must still be caught.
func TestStartCursorsSkipsRowsTheSnapshotReads(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{PageSize: 40})
	if err := f.site.Seed(ctx, 100); err != nil {
		t.Fatal(err)
	}
	now, err := f.det.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback()
	if _, err := slow.ExecContext(ctx, "UPDATE `tabBin` SET actual_qty = 1, modified = ? WHERE item_code = 'ITEM-00050'", now); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	c, cursors := f.poll(t, cursors)
	if got := c.codes(); len(got) != 0 {
		t.Fatalf("the first poll rebuilt %d items the snapshot covers", len(got))
	}
	if err := slow.Commit(); err != nil {
		t.Fatal(err)
	}
	c, _ = f.poll(t, cursors)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00050" {
		t.Fatalf("after the late commit the poll emitted %v, want [ITEM-00050]", got)
	}
}

// Start cursors that leave the overlap window unmarked (a standby taking
// over from another host) have the first poll read it: a delete made there
// goes out, which no snapshot could send; an item changed there is built
// again.
func TestStartCursorsLeaveTheWindowToThePoll(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{PageSize: 40})
	if err := f.site.Seed(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if err := f.site.DeleteItem(ctx, "ITEM-00003"); err != nil {
		t.Fatal(err)
	}
	cursors, err := f.det.StartCursors(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.poll(t, cursors)
	if it, ok := c.item("ITEM-00003"); !ok || !it.Deleted {
		t.Errorf("the first poll did not send the delete made in the window (emitted: %v, deleted: %v)", ok, it.Deleted)
	}
	if it, ok := c.item("ITEM-00007"); !ok || it.Deleted {
		t.Errorf("the first poll did not build an item changed in the window (emitted: %v)", ok)
	}
}

// PollTail reads only rows after the cursors: a new change is found, a late
// commit with an older modified is left for the next full Poll.
func TestPollTailSkipsTheOverlapWindow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{Overlap: time.Minute})
	if err := f.site.Seed(ctx, 5); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)
	now, err := f.det.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := time.Parse("2006-01-02 15:04:05.000000", now)
	early := base.Add(-10 * time.Second).Format("2006-01-02 15:04:05.000000")
	if _, err := f.db.ExecContext(ctx, "UPDATE `tabBin` SET actual_qty = 3, modified = ? WHERE item_code = 'ITEM-00001'", early); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := f.site.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "9", ReservedQty: "0", ProjectedQty: "9"}); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	cursors, err = f.det.PollTail(ctx, cursors, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00002" {
		t.Fatalf("PollTail emitted %v, want only the new change [ITEM-00002]", got)
	}
	c, _ = f.poll(t, cursors)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00001" {
		t.Fatalf("the full poll after it emitted %v, want the late row [ITEM-00001]", got)
	}
}
