package detector_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// lockedBuffer is a bytes.Buffer for a logger.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rewordComment gives the Edit comment of the rename to newName (as the
// fixture's RenameItem writes it) another content: a translation, say.
func rewordComment(t *testing.T, f *fixture, newName, content string) {
	t.Helper()
	res := execSQL(t, f, "UPDATE `tabComment` SET content = ? WHERE comment_type = 'Edit' AND reference_doctype = 'Item' AND reference_name = ?", content, newName)
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("%d Edit comments on %s (%v), want the rename's one", n, newName, err)
	}
}

// A rename retires the old code: the comment source sends it as a delete
// with the reason and the new code, followed by the new item, in one batch
// of one poll. Only the two bold names count, in any order and language; a
// comment without them is logged and skipped.
func TestPollRenames(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, f *fixture)
		// want is the comment source's batch: "-old:reason:new" for a
		// delete, "+code" for an item; "" = no such batch.
		want string
		warn bool // a WARN names the comment
	}{
		{"renamed", func(t *testing.T, f *fixture) { rename(t, f, "R&D-1", "R&D-2") }, "-R&D-1:renamed:R&D-2 +R&D-2", false},
		{"merged", func(t *testing.T, f *fixture) {
			if err := f.site.MergeItem(context.Background(), "MRG-A", "MRG-B"); err != nil {
				t.Fatal(err)
			}
		}, "-MRG-A:merged:MRG-B +MRG-B", false},
		{"translated, names the other way round", func(t *testing.T, f *fixture) {
			rename(t, f, "R&D-1", "R&D-2")
			rewordComment(t, f, "R&D-2", "<strong>R&amp;D-2</strong> hieß vorher <strong>R&amp;D-1</strong>")
		}, "-R&D-1:renamed:R&D-2 +R&D-2", false},
		{"no bold names", func(t *testing.T, f *fixture) {
			rename(t, f, "R&D-1", "R&D-2")
			rewordComment(t, f, "R&D-2", "renamed from R&amp;D-1 to R&amp;D-2")
		}, "", true},
		{"old code taken again", func(t *testing.T, f *fixture) {
			rename(t, f, "R&D-1", "R&D-2")
			saveItems(t, f, erpnext.Item{Code: "R&D-1"})
		}, "+R&D-2", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			f := newFixture(t, detector.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			saveItems(t, f, erpnext.Item{Code: "R&D-1"}, erpnext.Item{Code: "MRG-A"}, erpnext.Item{Code: "MRG-B"}, erpnext.Item{Code: "OTHER"})
			setPrice(t, f, "R&D-1", "Wholesale", "5")
			setPrice(t, f, "MRG-A", "Wholesale", "6")
			cursors := settled(t, f)
			tc.change(t, f)
			var comment string
			c, _ := f.poll(t, cursors)
			for _, b := range c.ofSource(detector.SourceComment) {
				if len(b.Items) > 0 {
					if comment != "" {
						t.Fatalf("several comment batches: %q and %+v", comment, b.Items)
					}
					comment = describe(b.Items)
				}
			}
			if comment != tc.want {
				t.Errorf("comment batch %q, want %q", comment, tc.want)
			}
			for _, b := range c.batches {
				for _, it := range b.Items {
					if it.Deleted && it.Reason != "" && b.Source != detector.SourceComment {
						t.Errorf("%s sent %s as a delete with reason %q", b.Source, it.Code, it.Reason)
					}
				}
			}
			if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "comment="); got != tc.warn {
				t.Errorf("WARN naming the comment: %v, want %v; log:\n%s", got, tc.warn, logs)
			}
			if _, ok := c.item("R&D-2"); strings.Contains(tc.name, "bold") && !ok {
				t.Errorf("the new item was not sent (the tabItem source sees it)")
			}
		})
	}
}

// rename is frappe.rename_doc("Item", old, new), with its Edit comment.
func rename(t *testing.T, f *fixture, old, new string) {
	t.Helper()
	if err := f.site.RenameItem(context.Background(), old, new); err != nil {
		t.Fatal(err)
	}
}

// describe writes items as TestPollRenames wants them.
func describe(items []detector.Item) string {
	var parts []string
	for _, it := range items {
		switch {
		case it.Deleted:
			parts = append(parts, "-"+it.Code+":"+it.Reason+":"+it.RenamedTo)
		case it.Content != nil:
			parts = append(parts, "+"+it.Code)
		default:
			parts = append(parts, "?"+it.Code)
		}
	}
	return strings.Join(parts, " ")
}
