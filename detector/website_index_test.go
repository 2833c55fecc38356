package detector_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/detector"
)

// TestWebsiteItemIndexWarning: webshop creates no index on tabWebsite
// Item.item_code, so each page of items reads the whole table; with many
// Website Items, New says so once, with the statement that fixes it, and is
// quiet once the index exists.
func TestWebsiteItemIndexWarning(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	if _, err := f.db.ExecContext(ctx, "INSERT INTO `tabWebsite Item` (name, item_code) SELECT CONCAT('WEB-ITM-', seq), CONCAT('ITEM-', seq) FROM seq_1_to_2500"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(ctx, "ANALYZE TABLE `tabWebsite Item`"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup string
		warn  bool
	}{
		{"no index", "", true},
		{"index on item_code", "ALTER TABLE `tabWebsite Item` ADD INDEX item_code_index (item_code)", false},
	} {
		if tc.setup != "" {
			if _, err := f.db.ExecContext(ctx, tc.setup); err != nil {
				t.Fatal(err)
			}
		}
		var logs bytes.Buffer
		if _, err := detector.New(ctx, f.db, detector.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "ADD INDEX item_code_index (item_code)"); got != tc.warn {
			t.Errorf("%s: warned %v, want %v:\n%s", tc.name, got, tc.warn, logs.String())
		}
	}
}
