package site

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// TestForcedStateReadBeforeANewerOneIsNotQueued: resync read an item, then
// the daemon queued a newer state of it; resync's older state must not be
// queued after it with a higher version.
func TestForcedStateReadBeforeANewerOneIsNotQueued(t *testing.T) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	daemon := &writer{ob: ob, tenant: "t", batchSize: 1, maxBodyBytes: 1 << 20, logger: logger, now: time.Now}
	resync := &writer{ob: ob, tenant: "t", batchSize: 1, maxBodyBytes: 1 << 20, logger: logger, now: time.Now, force: true}
	item := func(name string) detector.Batch {
		return detector.Batch{Items: []detector.Item{fieldsItem("A", map[string]any{"item_code": "A", "item_name": name})}}
	}
	readByResync := time.Now()
	time.Sleep(2 * time.Millisecond)
	_, err = daemon.write(ctx, item("newer")) // read after resync's read
	must(t, err)
	n, err := resync.writeRead(ctx, item("older"), readByResync)
	must(t, err)
	if n != 0 {
		t.Fatalf("resync queued %d state(s) read before the daemon's newer one", n)
	}
	// Read after the daemon's state (a later millisecond: states are
	// stamped to the millisecond): queued, as resync should.
	time.Sleep(2 * time.Millisecond)
	n, err = resync.writeRead(ctx, item("newest"), time.Now())
	must(t, err)
	if n != 1 {
		t.Fatalf("resync queued %d state(s) read after the last one, want 1", n)
	}
}
