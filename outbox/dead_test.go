package outbox

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// queue stores, in one Update, a message holding the given item states and
// makes each the item's last queued state; it returns the message's id.
func queue(t *testing.T, o *Outbox, deliveryID string, states ...ItemState) int64 {
	t.Helper()
	ctx := context.Background()
	m := NewMessage{DeliveryID: deliveryID, Body: []byte(deliveryID)}
	for _, s := range states {
		op := "upsert"
		if s.Deleted {
			op = "delete"
		}
		m.Items = append(m.Items, MessageItem{Code: s.Code, Version: s.Version, Op: op})
	}
	var id int64
	must(t, o.Update(ctx, func(tx *Tx) error {
		var err error
		if id, err = tx.AddMessage(ctx, m, t0); err != nil {
			return err
		}
		return tx.PutItemStates(ctx, states)
	}))
	return id
}

func itemState(t *testing.T, o *Outbox, code string) ItemState {
	t.Helper()
	s, ok, err := o.ItemState(context.Background(), code)
	if err != nil || !ok {
		t.Fatalf("ItemState %s: %v %v", code, ok, err)
	}
	s.QueuedAt = time.Time{} // when: not what these tests compare
	return s
}

// TestDeadStateIsNotSent: when a message goes dead, an item whose last queued
// state it carried no longer passes for having that content at the receiver:
// its hash is empty and it counts as live, so the writer, the sweep and
// resync send its current state again. An item with a newer state queued
// keeps that state.
func TestDeadStateIsNotSent(t *testing.T) {
	ctx := context.Background()
	upsert := func(code string, v int64) ItemState {
		return ItemState{Code: code, Version: v, Hash: "h-" + code + "-" + string(rune('0'+v))}
	}
	del := func(code string, v int64) ItemState {
		return ItemState{Code: code, Version: v, Hash: "deleted", Deleted: true}
	}
	tests := []struct {
		name string
		// run queues messages and marks one dead.
		run  func(t *testing.T, o *Outbox)
		want map[string]ItemState // DeliveredVersion/DeliveredHash ignored
		live []string
	}{
		{"upsert", func(t *testing.T, o *Outbox) {
			id := queue(t, o, "m1", upsert("A", 1), upsert("B", 1))
			must(t, o.MarkDead(ctx, id, 422, "refused", t0))
		}, map[string]ItemState{"A": {Code: "A", Version: 1}, "B": {Code: "B", Version: 1}}, []string{"A", "B"}},
		{"delete", func(t *testing.T, o *Outbox) {
			must(t, o.MarkDelivered(ctx, queue(t, o, "m1", upsert("A", 1)), 200, t0))
			id := queue(t, o, "m2", del("A", 2))
			must(t, o.MarkDead(ctx, id, 422, "refused", t0))
		}, map[string]ItemState{"A": {Code: "A", Version: 2}}, []string{"A"}},
		{"a newer state queued since", func(t *testing.T, o *Outbox) {
			id := queue(t, o, "m1", upsert("A", 1), upsert("B", 1))
			queue(t, o, "m2", upsert("A", 2))
			must(t, o.MarkDead(ctx, id, 422, "refused", t0))
		}, map[string]ItemState{"A": upsert("A", 2), "B": {Code: "B", Version: 1}}, []string{"A", "B"}},
		{"a newer delete queued since", func(t *testing.T, o *Outbox) {
			id := queue(t, o, "m1", upsert("A", 1))
			queue(t, o, "m2", del("A", 2))
			must(t, o.MarkDead(ctx, id, 422, "refused", t0))
		}, map[string]ItemState{"A": del("A", 2)}, nil},
		{"part of a split", func(t *testing.T, o *Outbox) {
			id := queue(t, o, "m1", upsert("A", 1), upsert("B", 1))
			must(t, o.Split(ctx, id, t0, func(map[string]bool) ([]NewMessage, error) {
				return []NewMessage{msg("p1", 1, "A"), msg("p2", 1, "B")}, nil
			}))
			p1, err := o.GetByDeliveryID(ctx, "p1")
			must(t, err)
			must(t, o.MarkDead(ctx, p1.ID, 422, "refused", t0))
		}, map[string]ItemState{"A": {Code: "A", Version: 1}, "B": upsert("B", 1)}, []string{"A", "B"}},
		{"a message that never goes dead", func(t *testing.T, o *Outbox) {
			id := queue(t, o, "m1", upsert("A", 1))
			must(t, o.MarkRetry(ctx, id, 500, "oops", t0))
		}, map[string]ItemState{"A": upsert("A", 1)}, []string{"A"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := openTest(t, "")
			tc.run(t, o)
			for code, want := range tc.want {
				got := itemState(t, o, code)
				got.DeliveredVersion, got.DeliveredHash = 0, ""
				if got != want {
					t.Errorf("item %s: %+v, want %+v", code, got, want)
				}
			}
			live, err := o.LiveItems(ctx, "", 100)
			must(t, err)
			if !slices.Equal(live, tc.live) {
				t.Errorf("LiveItems = %v, want %v", live, tc.live)
			}
		})
	}
}

// TestRetrySuperseded: a dead message is never made pending with an older
// state of an item that has had a newer one queued since (pending, delivered
// or dead); RetryCurrent sends what is still current of it under a new
// delivery id.
func TestRetrySuperseded(t *testing.T) {
	ctx := context.Background()
	st := func(code string, v int64) ItemState { return ItemState{Code: code, Version: v, Hash: "h"} }
	type outcome struct {
		err        error    // ErrSuperseded, ErrWrongState or nil
		all        bool     // SupersededError.All
		superseded []string // codes named
		state      State    // of the message afterwards
		items      []string // the message's items afterwards ("code@version")
		newID      bool     // the message has a new delivery id
	}
	keepCurrent := func(m Message, superseded map[string]bool) (NewMessage, error) {
		n := NewMessage{DeliveryID: m.DeliveryID + "-current", Body: []byte("current")}
		for _, it := range m.Items {
			if !superseded[it.Code] {
				n.Items = append(n.Items, it)
			}
		}
		return n, nil
	}
	keepAll := func(m Message, _ map[string]bool) (NewMessage, error) {
		return NewMessage{DeliveryID: m.DeliveryID + "-all", Body: []byte("all"), Items: m.Items}, nil
	}
	tests := []struct {
		name    string
		newer   func(t *testing.T, o *Outbox) // after m1 (A@1, B@1) went dead
		rebuild func(Message, map[string]bool) (NewMessage, error)
		want    outcome
	}{
		{"nothing newer", func(*testing.T, *Outbox) {}, nil,
			outcome{state: Pending, items: []string{"A@1", "B@1"}}},
		{"nothing newer, with rebuild: not called", func(*testing.T, *Outbox) {}, keepAll,
			outcome{state: Pending, items: []string{"A@1", "B@1"}}},
		{"every item newer and delivered", func(t *testing.T, o *Outbox) {
			must(t, o.MarkDelivered(ctx, queue(t, o, "m2", st("A", 2), st("B", 2)), 200, t0))
		}, keepCurrent, outcome{err: ErrSuperseded, all: true, superseded: []string{"A", "B"}, state: Dead, items: []string{"A@1", "B@1"}}},
		{"every item newer, pending or dead", func(t *testing.T, o *Outbox) {
			queue(t, o, "m2", st("A", 2))
			must(t, o.MarkDead(ctx, queue(t, o, "m3", st("B", 2)), 422, "refused", t0))
		}, nil, outcome{err: ErrSuperseded, all: true, superseded: []string{"A", "B"}, state: Dead, items: []string{"A@1", "B@1"}}},
		{"one item newer, Retry", func(t *testing.T, o *Outbox) {
			must(t, o.MarkDelivered(ctx, queue(t, o, "m2", st("B", 2)), 200, t0))
		}, nil, outcome{err: ErrSuperseded, superseded: []string{"B"}, state: Dead, items: []string{"A@1", "B@1"}}},
		{"one item newer, RetryCurrent", func(t *testing.T, o *Outbox) {
			must(t, o.MarkDelivered(ctx, queue(t, o, "m2", st("B", 2)), 200, t0))
		}, keepCurrent, outcome{superseded: []string{"B"}, state: Pending, items: []string{"A@1"}, newID: true}},
		{"one item newer, rebuilt with it", func(t *testing.T, o *Outbox) {
			must(t, o.MarkDelivered(ctx, queue(t, o, "m2", st("B", 2)), 200, t0))
		}, keepAll, outcome{err: ErrWrongState, state: Dead, items: []string{"A@1", "B@1"}}},
		{"one item newer, rebuilt with another version", func(t *testing.T, o *Outbox) {
			queue(t, o, "m2", st("B", 2))
		}, func(m Message, _ map[string]bool) (NewMessage, error) {
			return NewMessage{DeliveryID: "x", Body: []byte("x"), Items: []MessageItem{{Code: "A", Version: 7, Op: "upsert"}}}, nil
		}, outcome{err: ErrWrongState, state: Dead, items: []string{"A@1", "B@1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := openTest(t, "")
			id := queue(t, o, "m1", st("A", 1), st("B", 1))
			claim(t, o, t0, 1)
			must(t, o.MarkDead(ctx, id, 422, "refused", t0))
			o.Release(id)
			tc.newer(t, o)
			superseded, err := o.RetryCurrent(ctx, id, t0, tc.rebuild)
			if tc.want.err == nil && err != nil || tc.want.err != nil && !errors.Is(err, tc.want.err) {
				t.Fatalf("RetryCurrent: %v, want %v", err, tc.want.err)
			}
			var se *SupersededError
			if errors.As(err, &se) {
				superseded = se.Items
				if se.All != tc.want.all || se.ID != id || se.DeliveryID != "m1" {
					t.Errorf("SupersededError %+v", se)
				}
				for _, want := range append([]string{o.Path(), "retry message", "superseded"}, tc.want.superseded...) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
			}
			if !slices.Equal(superseded, tc.want.superseded) {
				t.Errorf("superseded %v, want %v", superseded, tc.want.superseded)
			}
			m, err := o.Get(ctx, id)
			must(t, err)
			var items []string
			for _, it := range m.Items {
				items = append(items, it.Code+"@"+string(rune('0'+it.Version)))
			}
			if m.State != tc.want.state || !slices.Equal(items, tc.want.items) || (m.DeliveryID != "m1") != tc.want.newID {
				t.Errorf("message afterwards: %s %s %v, want %s %v (new delivery id %v)", m.State, m.DeliveryID, items, tc.want.state, tc.want.items, tc.want.newID)
			}
			if tc.want.newID && (m.Exposed || string(m.Body) != "current" || m.Attempts != 1 || !m.NextAttemptAt.Equal(t0)) {
				t.Errorf("sent again as %+v: want never sent, the new body, attempts kept, due now", m)
			}
			if errors.Is(tc.want.err, ErrSuperseded) {
				if err := o.Retry(ctx, id, t0); !errors.Is(err, ErrSuperseded) {
					t.Errorf("Retry: %v, want ErrSuperseded", err)
				}
			}
		})
	}
	t.Run("pending or delivered", func(t *testing.T) {
		o := openTest(t, "")
		id := queue(t, o, "m1", st("A", 1))
		queue(t, o, "m2", st("A", 2))
		must(t, o.Retry(ctx, id, t0)) // pending: due now, whatever is newer
		must(t, o.MarkDelivered(ctx, id, 200, t0))
		if err := o.Retry(ctx, id, t0); !errors.Is(err, ErrWrongState) {
			t.Errorf("Retry of a delivered message: %v", err)
		}
	})
}

// TestMigrateDeadLettersFromVersion3: dead letters stored before schema 4
// stop passing for the last state sent of their items.
func TestMigrateDeadLettersFromVersion3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	db, err := sql.Open("sqlite", "file:"+path)
	must(t, err)
	steps := migrations()
	_, err = db.Exec(steps[0] + steps[1] + steps[2] + `
		PRAGMA application_id = 1701998707; PRAGMA user_version = 3;
		INSERT INTO messages (delivery_id, body, state, attempts, next_attempt_at, created_at, updated_at) VALUES
			('dead-a', 'a', 'dead', 1, NULL, 1, 1), ('dead-b1', 'b', 'dead', 1, NULL, 1, 1), ('ok-c', 'c', 'delivered', 1, NULL, 1, 1);
		INSERT INTO message_items (message_id, seq, item_code, version, op) VALUES
			(1, 0, 'A', 1, 'delete'), (2, 0, 'B', 1, 'upsert'), (3, 0, 'C', 1, 'upsert');
		INSERT INTO items (item_code, version, hash, deleted, queued_at) VALUES
			('A', 1, 'deleted', 1, 1), ('B', 2, 'hb2', 0, 1), ('C', 1, 'hc1', 0, 1);`)
	must(t, err)
	must(t, db.Close())
	o := openTest(t, path)
	for code, want := range map[string]ItemState{
		"A": {Code: "A", Version: 1},              // its dead delete was the last state
		"B": {Code: "B", Version: 2, Hash: "hb2"}, // a newer state was queued after the dead one
		"C": {Code: "C", Version: 1, Hash: "hc1"}, // delivered
	} {
		if got := itemState(t, o, code); got != want {
			t.Errorf("item %s after migration: %+v, want %+v", code, got, want)
		}
	}
	if live, err := o.LiveItems(ctx, "", 10); err != nil || !slices.Equal(live, []string{"A", "B", "C"}) {
		t.Errorf("LiveItems = %v, %v", live, err)
	}
}
