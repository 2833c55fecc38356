package site

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// TestWriterDeleteReasons: a delete entry says why (PROTOCOL.md, Delete):
// reason and renamed_to are always present; a delete that says more than the
// one queued (renamed after a plain delete) is sent, a plain one after a
// rename is not; an item never sent is not deleted, unless another host
// may have sent it (ha.enabled: deleteUnsent).
func TestWriterDeleteReasons(t *testing.T) {
	t.Run("one host", func(t *testing.T) { writerDeleteReasons(t, false) })
	t.Run("ha", func(t *testing.T) { writerDeleteReasons(t, true) })
}

func writerDeleteReasons(t *testing.T, ha bool) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	w := &writer{ob: ob, tenant: "lighting_co_ke", batchSize: 10, maxBodyBytes: 1 << 20,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, deleteUnsent: ha}
	upsert := func(code string) detector.Item {
		return fieldsItem(code, map[string]any{"item_code": code, "item_name": code})
	}
	del := func(code, reason, to string) detector.Item {
		return detector.Item{Code: code, Deleted: true, Reason: reason, RenamedTo: to}
	}
	type sent struct{ reason, renamedTo any }
	steps := []struct {
		name  string
		items []detector.Item
		want  map[string]sent // delete entries the write queues, by item
	}{
		{"upserts", []detector.Item{upsert("A"), upsert("B"), upsert("C"), upsert("D")}, nil},
		{"never sent", []detector.Item{del("NEVER", "", ""), del("NEVER2", detector.ReasonDeselected, "")}, nil},
		{"plain delete", []detector.Item{del("A", "", "")}, map[string]sent{"A": {"deleted", nil}}},
		{"plain again", []detector.Item{del("A", "", "")}, nil},
		{"rename after a plain delete", []detector.Item{del("A", detector.ReasonRenamed, "A2")}, map[string]sent{"A": {"renamed", "A2"}}},
		{"plain after a rename", []detector.Item{del("A", "", "")}, nil},
		{"merge", []detector.Item{del("B", detector.ReasonMerged, "C")}, map[string]sent{"B": {"merged", "C"}}},
		{"deselected", []detector.Item{del("D", detector.ReasonDeselected, "ignored")}, map[string]sent{"D": {"deselected", nil}}},
		{"deselected again", []detector.Item{del("D", detector.ReasonDeselected, "")}, nil},
	}
	// latest is the newest entry of each item among the pending messages
	// (a newer state may take the place of a waiting one: coalescing).
	latest := func() map[string]map[string]any {
		msgs, err := ob.List(ctx, outbox.Pending, 0)
		must(t, err)
		out := map[string]map[string]any{}
		for _, m := range msgs {
			full, err := ob.Get(ctx, m.ID)
			must(t, err)
			var body struct{ Items []map[string]any }
			dec := json.NewDecoder(bytes.NewReader(full.Body))
			dec.UseNumber()
			must(t, dec.Decode(&body))
			for _, it := range body.Items {
				code := it["item_code"].(string)
				if old, ok := out[code]; !ok || old["version"].(json.Number) < it["version"].(json.Number) {
					out[code] = it
				}
			}
		}
		return out
	}
	if ha {
		steps[1].want = map[string]sent{"NEVER": {"deleted", nil}, "NEVER2": {"deselected", nil}}
	}
	prev := latest()
	for _, s := range steps {
		if _, err := w.write(ctx, detector.Batch{Items: s.items}); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		now := latest()
		got := map[string]sent{}
		for code, it := range now {
			if p, ok := prev[code]; ok && p["version"] == it["version"] || it["op"] != "delete" {
				continue
			}
			if len(it) != 5 {
				t.Errorf("%s: delete entry %v: want exactly item_code, op, version, reason, renamed_to", s.name, it)
			}
			got[code] = sent{it["reason"], it["renamed_to"]}
		}
		prev = now
		if len(got) != len(s.want) {
			t.Errorf("%s: deletes queued %v, want %v", s.name, got, s.want)
		}
		for code, w := range s.want {
			if got[code] != w {
				t.Errorf("%s: delete of %s = %+v, want %+v", s.name, code, got[code], w)
			}
		}
	}
}

// TestWriterKeepsChangesOn: an item's change date is stored with each new
// state, and moved without a new state when only it changed.
func TestWriterKeepsChangesOn(t *testing.T) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	w := &writer{ob: ob, tenant: "lighting_co_ke", batchSize: 10, maxBodyBytes: 1 << 20,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	item := func(name, on string) detector.Item {
		it := fieldsItem("A", map[string]any{"item_code": "A", "item_name": name})
		it.ChangesOn = on
		return it
	}
	for _, s := range []struct {
		it      detector.Item
		queued  int
		version func(v int64) bool
		due     string
	}{
		{item("one", "2026-12-05"), 1, nil, "2026-12-05"},
		{item("one", "2026-12-07"), 0, nil, "2026-12-07"}, // same content: no new state, the date moves
		{item("two", ""), 1, nil, ""},
	} {
		n, err := w.write(ctx, detector.Batch{Items: []detector.Item{s.it}})
		must(t, err)
		if n != s.queued {
			t.Errorf("%+v: queued %d, want %d", s.it.ChangesOn, n, s.queued)
		}
		st, _, err := ob.ItemState(ctx, "A")
		must(t, err)
		if st.ChangesOn != s.due {
			t.Errorf("after writing %q: stored change date %q, want %q", s.it.ChangesOn, st.ChangesOn, s.due)
		}
	}
}
