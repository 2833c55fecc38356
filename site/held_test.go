package site_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
)

// TestQuietPollsCommitNothing: the polls of a site where nothing changes
// move its cursors (every overlap/4, detector advanceIdle) without a commit
// of their own: each commit would make delivery, housekeeping and the
// metrics open the outbox again, which at hundreds of sites was most of the
// idle work. The positions reach the outbox when the site stops.
func TestQuietPollsCommitNothing(t *testing.T) {
	ctx := context.Background()
	e := sitetest.New(t, sitetest.Options{Items: 3, ERP: `overlap = "2s"`})
	e.Start()
	e.WaitCount(3)
	time.Sleep(2500 * time.Millisecond) // the initial sync's commits and their checkpoint

	ob, err := outbox.Open(ctx, filepath.Join(e.Dir, "outbox.db"))
	must(t, err)
	defer ob.Close()
	before, err := ob.Cursors(ctx)
	must(t, err)
	stamp, polls := ob.Stamp(), e.Pipeline.Polls()
	time.Sleep(3 * time.Second) // 60 polls at 50 ms, of which a dozen move the cursors
	if n := e.Pipeline.Polls() - polls; n < 10 {
		t.Fatalf("%d polls in 3 s, want at least 10", n)
	}
	if s := ob.Stamp(); s.CommittedSince(stamp) {
		t.Errorf("quiet polls committed to the outbox: %+v, then %+v", stamp, s)
	}
	e.Stop()

	after, err := ob.Cursors(ctx)
	must(t, err)
	moved := after[detector.SourceItem].Modified > before[detector.SourceItem].Modified
	if !moved {
		t.Errorf("stopping did not store the moved position of %s: %q, before the quiet polls %q",
			detector.SourceItem, after[detector.SourceItem].Modified, before[detector.SourceItem].Modified)
	}
}

// TestRestartCommitsNothing: a site that starts again where nothing changed
// writes nothing to its outbox: each write would keep the outbox's writing
// connections, and the memory they hold, open for a while, at every site of
// the process at once. Nor does it keep the connections of its start's
// reads. (Rows changed within erp.overlap of the stored
// cursors are read again, and their batch is committed: here there are
// none.)
func TestRestartCommitsNothing(t *testing.T) {
	ctx := context.Background()
	e := sitetest.New(t, sitetest.Options{Items: 3, ERP: `overlap = "1s"`})
	e.Start()
	e.WaitCount(3)
	time.Sleep(2500 * time.Millisecond) // the quiet polls move the cursors past the overlap
	e.Stop()

	ob, err := outbox.Open(ctx, filepath.Join(e.Dir, "outbox.db"))
	must(t, err)
	defer ob.Close()
	stamp := ob.Stamp()
	polls := e.Pipeline.Polls()
	e.Start()
	deadline := time.Now().Add(10 * time.Second)
	for e.Pipeline.Polls()-polls < 10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a checkpoint comes a second after a commit
	if s := ob.Stamp(); s.CommittedSince(stamp) {
		t.Errorf("a restart where nothing changed committed to the outbox: %+v, then %+v", stamp, s)
	}
	// Nor did it write what the outbox holds already (the site's state):
	// SQLite stores nothing then, but the writer's connection stays open.
	// The reads of the start are done: their connections went too.
	if writing, reading := e.Pipeline.OutboxConnections(); writing != 0 || reading != 0 {
		t.Errorf("after a restart where nothing changed, the outbox holds %d writing and %d reading connections, want none", writing, reading)
	}
	e.Stop()
}
