package outbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// openConns counts the outbox's open SQLite connections.
func openConns(o *Outbox) int {
	return o.w.Stats().OpenConnections + o.wm.Stats().OpenConnections +
		o.r.Stats().OpenConnections + o.ck.db.Stats().OpenConnections
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
// SQLite's memory, and hundreds of idle sites share one process. Opening
// and closing them is no commit (Stamp), and the outbox works as before
// once they are open again.
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
	stats(t, o)
	waitClosed(t, o)

	idle := o.Stamp()
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
		if s := o.Stamp(); s != idle {
			t.Errorf("%s, which commits nothing, changed the stamp from %q to %q", read.name, idle, s)
		}
		waitClosed(t, o)
		if s := o.Stamp(); s != idle {
			t.Errorf("closing the connections after %s changed the stamp from %q to %q", read.name, idle, s)
		}
	}

	add(t, o, t0, msg("d3", 2, "A"))
	if s := o.Stamp(); s == idle {
		t.Errorf("a commit after the connections closed left the stamp at %q", s)
	}
	if st := stats(t, o); st.Pending != 2 || st.Delivered != 1 {
		t.Errorf("after reopening: pending %d delivered %d, want 2 and 1", st.Pending, st.Delivered)
	}
}
