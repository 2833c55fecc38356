package detector_test

import (
	"context"
	"database/sql"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

const layout = "2006-01-02 15:04:05.000000"

// The window check compares MariaDB's CRC32(CONCAT(name, modified)) with the
// checksum the detector computes from the (name, modified) a page query reads:
// CONCAT must write a DATETIME(6) with all six fractional digits, and names
// must hash as their UTF-8 bytes.
func TestRowChecksumMatchesMariaDB(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	tests := []struct{ name, modified string }{
		{"ITEM-00001", "2024-03-04 05:06:07.000000"},
		{"CAFÉ-1", "2024-03-04 05:06:07.100000"},
		{"日本茶-2", "2024-12-31 23:59:59.999999"},
		{"Party 🎉 3", "2024-01-01 00:00:00.000001"},
		{"Ньютон 'q\" \\ 4", "2031-07-08 09:10:11.120000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.db.ExecContext(ctx, "INSERT INTO `tabItem` (name, item_code, item_name, modified) VALUES (?, ?, ?, ?)",
				tc.name, tc.name, tc.name, tc.modified); err != nil {
				t.Fatal(err)
			}
			var sent, concat string
			var crc uint32
			err := f.db.QueryRowContext(ctx, "SELECT modified, CONCAT(name, modified), CRC32(CONCAT(name, modified)) FROM `tabItem` WHERE name = ?", tc.name).
				Scan(&sent, &concat, &crc)
			if err != nil {
				t.Fatal(err)
			}
			if sent != tc.modified || concat != tc.name+tc.modified {
				t.Errorf("server sent modified %q and CONCAT %q, want %q and %q", sent, concat, tc.modified, tc.name+tc.modified)
			}
			if got := detector.RowChecksum(tc.name, sent); got != crc || got != crc32.ChecksumIEEE([]byte(tc.name+tc.modified)) {
				t.Errorf("RowChecksum = %d, MariaDB's CRC32 = %d", got, crc)
			}
		})
	}
}

// After a bulk change the detector has handed out every row of it; the full
// polls that follow must check the overlap window without reading rows, and
// must still find each kind of row that lands in the window late.
func TestPollWindowAfterBulkChange(t *testing.T) {
	tests := []struct {
		name string
		// change returns the item codes the next poll must emit; it may poll
		// itself, with cursors.
		change func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string
		// reread is whether finding the change needs a re-read of the window.
		reread bool
		// readAtMost is how many rows the poll may read; 0 = the bulk's.
		readAtMost int
	}{
		{"nothing", func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string { return nil }, false, 0},
		{"late commit into the bulk's modified", func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string {
			// Another price stamped at the same microsecond, ordered before the cursor.
			code := priceRow(t, f, "price_list = 'Wholesale' AND name < ?", (*cursors)[detector.SourcePrice].Name)
			execSQL(t, f, "UPDATE `tabItem Price` SET price_list_rate = 5, modified = ? WHERE item_code = ? AND price_list = 'Wholesale'", bulk, code)
			return []string{code}
		}, true, 0},
		{"late commit before the bulk", func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string {
			code := priceRow(t, f, "price_list = 'Wholesale'")
			execSQL(t, f, "UPDATE `tabItem Price` SET price_list_rate = 6, modified = ? WHERE item_code = ? AND price_list = 'Wholesale'", shift(t, bulk, -time.Second), code)
			return []string{code}
		}, true, 0},
		{"handed-out row re-stamped earlier", func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string {
			code := priceRow(t, f, "price_list = 'Standard Selling'")
			execSQL(t, f, "UPDATE `tabItem Price` SET price_list_rate = 7, modified = ? WHERE item_code = ? AND price_list = 'Standard Selling'", shift(t, bulk, -2*time.Second), code)
			return []string{code}
		}, true, 0},
		{"handed-out row deleted", func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string {
			code := priceRow(t, f, "price_list = 'Standard Selling'")
			if err := f.site.DeletePrice(context.Background(), code, "Standard Selling"); err != nil {
				t.Fatal(err)
			}
			return []string{code} // found through tabDeleted Document
		}, true, 0},
		{"late commit after the bulk", func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string {
			// A new change moves the cursor on; then a row commits between the bulk and it.
			time.Sleep(2 * time.Millisecond)
			if err := f.site.SetPrice(context.Background(), "ITEM-00007", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "9"}); err != nil {
				t.Fatal(err)
			}
			var c *collector
			c, *cursors = f.poll(t, *cursors)
			if got := c.codes(); strings.Join(got, ",") != "ITEM-00007" {
				t.Fatalf("the poll after the new change emitted %v, want [ITEM-00007]", got)
			}
			code := priceRow(t, f, "price_list = 'Wholesale'")
			execSQL(t, f, "UPDATE `tabItem Price` SET price_list_rate = 10, modified = ? WHERE item_code = ? AND price_list = 'Wholesale'", shift(t, bulk, time.Microsecond), code)
			return []string{code}
		}, true, 2}, // the re-read starts after the bulk
		{"new change after the bulk", func(t *testing.T, f *fixture, bulk string, cursors *map[string]detector.Cursor) []string {
			time.Sleep(2 * time.Millisecond)
			if err := f.site.SetPrice(context.Background(), "ITEM-00005", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "8"}); err != nil {
				t.Fatal(err)
			}
			return []string{"ITEM-00005"}
		}, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, detector.Config{PageSize: 50})
			if err := f.site.Seed(ctx, 300); err != nil {
				t.Fatal(err)
			}
			cursors := f.startCursors(t)
			_, cursors = f.poll(t, cursors)
			if n := f.det.WindowRereads(); n != 0 {
				t.Fatalf("%d window re-reads right after StartCursors, which marks the window's rows as handed out", n)
			}
			bulk, n := bulkPriceChange(t, f)
			c, cursors := f.poll(t, cursors)
			if got := len(c.codes()); int64(got) != n {
				t.Fatalf("the poll after the bulk change emitted %d items, want %d", got, n)
			}
			if got := f.det.SeenRows(detector.SourcePrice); int64(got) < n {
				t.Fatalf("%d price rows remembered as handed out, want at least the bulk's %d", got, n)
			}

			rows, rereads := f.det.RowsRead(), f.det.WindowRereads()
			want := tc.change(t, f, bulk, &cursors)
			c, cursors = f.poll(t, cursors)
			if got := c.codes(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("the poll after the change emitted %v, want %v", got, want)
			}
			wantRereads := 0
			if tc.reread {
				wantRereads = 1
			}
			if got := f.det.WindowRereads() - rereads; got != wantRereads {
				t.Errorf("%d window re-reads, want %d", got, wantRereads)
			}
			if got := f.det.RowsRead() - rows; (tc.readAtMost > 0 || !tc.reread) && got > tc.readAtMost {
				t.Errorf("the poll read %d rows, want at most %d", got, tc.readAtMost)
			}

			// The window now agrees with what was handed out: the next poll reads nothing.
			rows, rereads = f.det.RowsRead(), f.det.WindowRereads()
			c, _ = f.poll(t, cursors)
			if got := c.codes(); len(got) != 0 {
				t.Errorf("a second poll emitted %v again", got)
			}
			if got := f.det.RowsRead() - rows; got != 0 {
				t.Errorf("a second poll read %d rows, want 0", got)
			}
			if got := f.det.WindowRereads() - rereads; got != 0 {
				t.Errorf("a second poll re-read the window %d times, want 0", got)
			}
		})
	}
}

// Rows handed out are forgotten once they leave the overlap window behind
// the cursor.
func TestPollForgetsRowsBehindTheWindow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{Overlap: time.Second})
	if err := f.site.Seed(ctx, 100); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)
	_, n := bulkPriceChange(t, f)
	_, cursors = f.poll(t, cursors)
	if got := f.det.SeenRows(detector.SourcePrice); int64(got) < n {
		t.Fatalf("%d price rows remembered, want at least the bulk's %d", got, n)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := f.site.SetPrice(ctx, "ITEM-00002", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "3"}); err != nil {
		t.Fatal(err)
	}
	// The first poll moves the cursor past the window; the next one starts its window there.
	c, cursors := f.poll(t, cursors)
	if got := c.codes(); strings.Join(got, ",") != "ITEM-00002" {
		t.Fatalf("emitted %v, want [ITEM-00002]", got)
	}
	_, _ = f.poll(t, cursors)
	if got := f.det.SeenRows(detector.SourcePrice); got != 1 {
		t.Errorf("%d price rows remembered after the bulk left the window, want 1 (the new change)", got)
	}
	if got := f.det.WindowRereads(); got != 0 {
		t.Errorf("%d window re-reads, want 0", got)
	}
}

// A table that stops changing has its cursor moved up to the database's now
// after a quarter of the overlap, so a bulk change leaves the window, and the
// detector's memory, even when nothing changes after it.
func TestPollMovesAnIdleCursorOn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{Overlap: time.Second})
	if err := f.site.Seed(ctx, 100); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	now, _ := bulkPriceChange(t, f)
	_, cursors = f.poll(t, cursors)
	bulkCursor := cursors[detector.SourcePrice]
	if bulkCursor.Modified != now || f.det.SeenRows(detector.SourcePrice) == 0 {
		t.Fatalf("after the bulk change: cursor %+v, %d rows remembered; want the bulk's modified %s and its rows",
			bulkCursor, f.det.SeenRows(detector.SourcePrice), now)
	}
	// Within a quarter of the overlap the cursor stays where the rows put it.
	c, cursors := f.poll(t, cursors)
	if cursors[detector.SourcePrice] != bulkCursor || len(c.codes()) != 0 {
		t.Fatalf("poll at once: cursor %+v, emitted %v; want %+v and nothing", cursors[detector.SourcePrice], c.codes(), bulkCursor)
	}
	time.Sleep(1200 * time.Millisecond)
	c, cursors = f.poll(t, cursors)
	moved := cursors[detector.SourcePrice]
	if !(bulkCursor.Modified < moved.Modified) || len(c.codes()) != 0 {
		t.Fatalf("after an idle overlap: cursor %+v (was %+v), emitted %v; want it moved on and nothing emitted", moved, bulkCursor, c.codes())
	}
	_, _ = f.poll(t, cursors)
	if got := f.det.SeenRows(detector.SourcePrice); got != 0 {
		t.Errorf("%d price rows remembered after the bulk left the window, want 0", got)
	}
	if got := f.det.WindowRereads(); got != 0 {
		t.Errorf("%d window re-reads, want 0", got)
	}
}

// bulkPriceChange changes every Standard Selling price in one UPDATE, all
// stamped with the database's now, as a mass price update does. It returns
// that modified and how many rows changed: one per item. Templates' prices
// are left alone: they would send their variants too (see
// TestPollTemplatePriceResendsVariants), some of them twice.
func bulkPriceChange(t *testing.T, f *fixture) (modified string, changed int64) {
	t.Helper()
	modified, err := f.det.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := execSQL(t, f, "UPDATE `tabItem Price` SET price_list_rate = price_list_rate + 1, modified = ? "+
		"WHERE price_list = 'Standard Selling' AND item_code NOT IN (SELECT name FROM `tabItem` WHERE has_variants = 1)", modified)
	changed, err = res.RowsAffected()
	if err != nil {
		t.Fatal(err)
	}
	return modified, changed
}

// priceRow returns the item code of the first Item Price row, by name, that
// matches where and is not a template's (whose change sends its variants too).
func priceRow(t *testing.T, f *fixture, where string, args ...any) string {
	t.Helper()
	var code string
	err := f.db.QueryRowContext(context.Background(), "SELECT item_code FROM `tabItem Price` WHERE ("+where+") "+
		"AND item_code NOT IN (SELECT name FROM `tabItem` WHERE has_variants = 1) ORDER BY name LIMIT 1", args...).Scan(&code)
	if err != nil {
		t.Fatalf("no Item Price row where %s: %v", where, err)
	}
	return code
}

func execSQL(t *testing.T, f *fixture, q string, args ...any) sql.Result {
	t.Helper()
	res, err := f.db.ExecContext(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// shift moves a `modified` text by d.
func shift(t *testing.T, modified string, d time.Duration) string {
	t.Helper()
	m, err := time.Parse(layout, modified)
	if err != nil {
		t.Fatal(err)
	}
	return m.Add(d).Format(layout)
}

// Pages are emitted while the next one is read. A failed emit still stops
// the poll at once: its error comes back as is, the cursor is that of the
// last batch emitted without error, no later batch is emitted, and the next
// poll hands out exactly the rows of the failed batch and after.
func TestPollStopsAtTheFailedPage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{PageSize: 10})
	if err := f.site.Seed(ctx, 40); err != nil {
		t.Fatal(err)
	}
	cursors := f.startCursors(t)
	_, cursors = f.poll(t, cursors)
	_, changed := bulkPriceChange(t, f)
	if changed <= 30 {
		t.Fatalf("the bulk change touched %d prices; the test needs more than 3 pages of 10", changed)
	}
	diskFull := errors.New("disk full")
	var ok []detector.Batch
	calls := 0
	next, err := f.det.Poll(ctx, cursors, func(ctx context.Context, b detector.Batch) error {
		if b.Source != detector.SourcePrice || len(b.Items) == 0 {
			return nil
		}
		calls++
		if calls == 3 {
			return diskFull
		}
		ok = append(ok, b)
		return nil
	})
	if err != diskFull {
		t.Fatalf("Poll returned %v, want the emit's own error", err)
	}
	if calls != 3 || len(ok) != 2 {
		t.Fatalf("%d price batches emitted, %d accepted; want 3 and 2: nothing after the failed one", calls, len(ok))
	}
	if next[detector.SourcePrice] != ok[1].Cursor {
		t.Fatalf("price cursor %+v after the failure, want the second batch's %+v", next[detector.SourcePrice], ok[1].Cursor)
	}
	done := map[string]bool{}
	for _, b := range ok {
		for _, it := range b.Items {
			done[it.Code] = true
		}
	}
	c, _ := f.poll(t, next)
	got := c.codes()
	if int64(len(done)+len(got)) != changed {
		t.Errorf("%d items before the failure + %d after = %d, want the %d changed", len(done), len(got), len(done)+len(got), changed)
	}
	for _, code := range got {
		if done[code] {
			t.Errorf("%s was emitted again after the failure", code)
		}
	}
}
