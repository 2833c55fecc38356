package outbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// openConns counts the outbox's open SQLite connections.
func openConns(o *Outbox) int {
	writing, reading := o.OpenConnections()
	return writing + reading
}

// waitClosed waits until the outbox holds no open connection.
func waitClosed(t *testing.T, o *Outbox) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for openConns(o) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle outbox still holds %d connections (writer %d, bookkeeping %d, readers %d, checkpointer %d)",
				openConns(o), o.w.Stats().OpenConnections, o.wm.Stats().OpenConnections, o.r.Stats().OpenConnections, o.ck.db.Stats().OpenConnections)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An idle outbox closes all its connections, the writer's too: each holds
// SQLite's memory, and hundreds of idle sites share one process. Neither
// closing them (which removes the checkpointed log) nor opening them again
// for reads counts as a commit (Mark.CommittedSince), and the outbox works
// as before once they are open again.
func TestIdleOutboxClosesItsConnections(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := open(ctx, path, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { o.Close() })

	add(t, o, t0, msg("d1", 1, "A", "B"), msg("d2", 1, "C"))
	got, err := o.Claim(ctx, t0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("Claim: %d messages, %v", len(got), err)
	}
	if _, err := o.MarkDeliveredBatch(ctx, []Accepted{{ID: got[0].ID, Status: 200, DeliveryID: got[0].DeliveryID}}, t0); err != nil {
		t.Fatalf("MarkDeliveredBatch: %v", err)
	}
	o.ck.checkpoint() // as the checkpointer does a second after the last commit
	busy := o.Stamp()
	if busy.wal == (fileMark{}) {
		t.Fatalf("no write-ahead log while the writer is open: %+v", busy)
	}
	waitClosed(t, o)
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatalf("the write-ahead log is still there after the last connection closed")
	}
	idle := o.Stamp()
	if idle.CommittedSince(busy) {
		t.Errorf("closing the connections counts as a commit: %+v, then %+v", busy, idle)
	}

	for _, read := range []struct {
		name string
		fn   func() error
	}{
		{"Stats", func() error { _, err := o.Stats(ctx); return err }},
		{"Cursors", func() error { _, err := o.Cursors(ctx); return err }},
		{"Due", func() error { _, err := o.Due(ctx, t0, 10, nil); return err }},
		{"PruneDelivered of nothing", func() error { _, err := o.PruneDelivered(ctx, t0.Add(-time.Hour)); return err }},
	} {
		if err := read.fn(); err != nil {
			t.Fatalf("%s after the connections closed: %v", read.name, err)
		}
		if s := o.Stamp(); s.CommittedSince(idle) {
			t.Errorf("%s, which commits nothing, counts as a commit: %+v, then %+v", read.name, idle, s)
		}
		waitClosed(t, o)
		if s := o.Stamp(); s.CommittedSince(idle) {
			t.Errorf("closing the connections after %s counts as a commit: %+v, then %+v", read.name, idle, s)
		}
	}

	add(t, o, t0, msg("d3", 2, "A"))
	if !o.Stamp().CommittedSince(idle) {
		t.Errorf("a commit after the connections closed does not count")
	}
	if st := stats(t, o); st.Pending != 2 || st.Delivered != 1 {
		t.Errorf("after reopening: pending %d delivered %d, want 2 and 1", st.Pending, st.Delivered)
	}
}

// Open checks every statement, then lets its connections go at once: the
// statements compiled on them are most of an outbox's memory, and at a start
// of hundreds of sites each should hold only what its first reads need. A
// read, or a prune with nothing to delete, then opens a reading connection
// alone, and the writer prepares its statements again when it first writes.
func TestOpenHoldsNoConnection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := open(ctx, path, time.Hour)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	if n := openConns(o); n != 0 {
		t.Fatalf("a new outbox holds %d connections (writer %d, bookkeeping %d, readers %d), want none",
			n, o.w.Stats().OpenConnections, o.wm.Stats().OpenConnections, o.r.Stats().OpenConnections)
	}
	mark := o.Stamp()
	if _, err := o.Due(ctx, t0, 10, nil); err != nil {
		t.Fatalf("Due: %v", err)
	}
	if n, err := o.PruneDelivered(ctx, t0); err != nil || n != 0 {
		t.Fatalf("PruneDelivered = %d, %v; want 0", n, err)
	}
	if w, wm, r, ck := o.w.Stats().OpenConnections, o.wm.Stats().OpenConnections, o.r.Stats().OpenConnections, o.ck.db.Stats().OpenConnections; w != 0 || wm != 0 || r != 1 || ck != 0 {
		t.Errorf("after a read and a prune of nothing: writer %d, bookkeeping %d, readers %d, checkpointer %d connections, want 0, 0, 1, 0", w, wm, r, ck)
	}
	if o.Stamp().CommittedSince(mark) {
		t.Errorf("a read and a prune of nothing committed")
	}
	add(t, o, t0, msg("d1", 1, "A", "B"))
	got, err := o.Claim(ctx, t0, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim: %d messages, %v", len(got), err)
	}
	if _, err := o.MarkDeliveredBatch(ctx, []Accepted{{ID: got[0].ID, Status: 200, DeliveryID: got[0].DeliveryID}}, t0); err != nil {
		t.Fatalf("MarkDeliveredBatch: %v", err)
	}
	if st := stats(t, o); st.Delivered != 1 {
		t.Errorf("delivered %d, want 1", st.Delivered)
	}
}

func TestMarkCommittedSince(t *testing.T) {
	db1, db2 := fileMark{4096, 100}, fileMark{8192, 200}
	wal1, wal2 := fileMark{32000, 150}, fileMark{32000, 250}
	mark := func(db, wal fileMark) Mark { return Mark{db: db, wal: wal, taken: true} }
	for _, tc := range []struct {
		name      string
		prev, now Mark
		want      bool
	}{
		{"never read", Mark{}, mark(db1, wal1), true},
		{"unchanged", mark(db1, wal1), mark(db1, wal1), false},
		{"no log, still none", mark(db1, fileMark{}), mark(db1, fileMark{}), false},
		{"the log grew", mark(db1, wal1), mark(db1, fileMark{40000, 160}), true},
		{"the log rewritten", mark(db1, wal1), mark(db1, wal2), true},
		{"a log where there was none", mark(db1, fileMark{}), mark(db1, wal1), true},
		{"checkpointed", mark(db1, wal1), mark(db2, wal1), true},
		{"the log removed, nothing copied", mark(db1, wal1), mark(db1, fileMark{}), false},
		{"the log removed after copying", mark(db1, wal1), mark(db2, fileMark{}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.now.CommittedSince(tc.prev); got != tc.want {
				t.Errorf("CommittedSince = %v, want %v", got, tc.want)
			}
		})
	}
}
