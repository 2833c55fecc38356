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

// TestDaemonStateReadBeforeAResyncIsBuiltAgain: the daemon read an item,
// then `erpsync resync` queued the item's state (read later, so at least as
// new); the daemon's state, queued after it, would reach the receiver with a
// higher version and older content. The daemon builds the item again
// instead and queues what the database holds now.
func TestDaemonStateReadBeforeAResyncIsBuiltAgain(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	item := func(name string, readAt time.Time) detector.Item {
		it := fieldsItem("A", map[string]any{"item_code": "A", "item_name": name})
		it.ReadAt = readAt
		return it
	}
	for _, tc := range []struct {
		name       string
		resyncLate bool // resync queued after the daemon's read
		wantName   string
		wantBuilds int
	}{
		{name: "resync queued after the daemon read", resyncLate: true, wantName: "now", wantBuilds: 1},
		{name: "resync queued before the daemon read", resyncLate: false, wantName: "daemon", wantBuilds: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
			must(t, err)
			defer ob.Close()
			builds := 0
			daemon := &writer{ob: ob, tenant: "t", batchSize: 1, maxBodyBytes: 1 << 20, logger: logger, now: time.Now,
				rebuild: func(ctx context.Context, codes []string) ([]detector.Item, error) {
					builds++
					if len(codes) != 1 || codes[0] != "A" {
						t.Errorf("built again %v, want [A]", codes)
					}
					return []detector.Item{item("now", time.Now())}, nil
				}}
			resync := &writer{ob: ob, tenant: "t", batchSize: 1, maxBodyBytes: 1 << 20, logger: logger, now: time.Now, force: true}
			daemonRead := time.Now()
			if !tc.resyncLate {
				must(t, ignoreN(resync.writeRead(ctx, detector.Batch{Items: []detector.Item{item("resync", time.Now())}}, time.Now())))
				time.Sleep(2 * time.Millisecond) // states are stamped to the millisecond
				daemonRead = time.Now()
			} else {
				time.Sleep(2 * time.Millisecond)
				must(t, ignoreN(resync.writeRead(ctx, detector.Batch{Items: []detector.Item{item("resync", time.Now())}}, time.Now())))
			}
			resyncState, _, err := ob.ItemState(ctx, "A")
			must(t, err)
			n, err := daemon.write(ctx, detector.Batch{Items: []detector.Item{item("daemon", daemonRead)}})
			must(t, err)
			if n != 1 {
				t.Fatalf("daemon queued %d states, want 1", n)
			}
			if builds != tc.wantBuilds {
				t.Errorf("built again %d times, want %d", builds, tc.wantBuilds)
			}
			st, _, err := ob.ItemState(ctx, "A")
			must(t, err)
			want, _ := hashContent(item(tc.wantName, time.Time{}).Content, nil)
			if st.Hash != want {
				t.Errorf("last state queued is not the item as %q built it", tc.wantName)
			}
			if st.Version <= resyncState.Version {
				t.Errorf("version %d not above resync's %d", st.Version, resyncState.Version)
			}
		})
	}
}

func ignoreN(_ int, err error) error { return err }
