package site

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// TestVersionsStayAboveWhatWasSentAfterPowerLossAndClockBack: a power loss
// undid every commit of the outbox (here: a new, empty outbox file; the
// version floor beside it was fsynced and survived) while the clock was set
// back an hour. The item's next version must still be above the one the
// receiver may hold.
func TestVersionsStayAboveWhatWasSentAfterPowerLossAndClockBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t2 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	write := func(path string, now time.Time, name string) int64 {
		t.Helper()
		ob, err := outbox.Open(ctx, path)
		must(t, err)
		defer ob.Close()
		floor, err := openFloor(path)
		must(t, err)
		w := &writer{ob: ob, tenant: "t", batchSize: 1, maxBodyBytes: 1 << 20, logger: logger,
			now: func() time.Time { return now }, floor: floor}
		_, err = w.write(ctx, detector.Batch{Items: []detector.Item{fieldsItem("A", map[string]any{"item_code": "A", "item_name": name})}})
		must(t, err)
		st, ok, err := ob.ItemState(ctx, "A")
		must(t, err)
		if !ok {
			t.Fatal("no item state stored")
		}
		return st.Version
	}
	before := filepath.Join(dir, "before", "outbox.db")
	must(t, os.MkdirAll(filepath.Dir(before), 0o755))
	sent := write(before, t2, "a1")

	after := filepath.Join(dir, "after", "outbox.db")
	must(t, os.MkdirAll(filepath.Dir(after), 0o755))
	b, err := os.ReadFile(before + ".version-floor")
	must(t, err)
	must(t, os.WriteFile(after+".version-floor", b, 0o600))
	next := write(after, t2.Add(-time.Hour), "a2")
	if next <= sent {
		t.Fatalf("version %d after the power loss and the clock set back, not above %d that the receiver may hold", next, sent)
	}

	// Versions within floorAhead of the last write cost no new write.
	f, err := openFloor(after)
	must(t, err)
	must(t, f.cover(f.start+1))
	fi, err := os.Stat(after + ".version-floor")
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	must(t, f.cover(f.start+floorAhead))
	fi2, err := os.Stat(after + ".version-floor")
	must(t, err)
	if !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("the floor was written again for a version within floorAhead of it")
	}
	must(t, f.cover(f.start+3*floorAhead))
	if v, err := f.read(); err != nil || v < f.start+3*floorAhead {
		t.Errorf("floor %d, %v after covering %d", v, err, f.start+3*floorAhead)
	}
}
