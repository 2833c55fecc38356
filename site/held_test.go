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
