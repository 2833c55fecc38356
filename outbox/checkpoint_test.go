package outbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A commit never copies the write-ahead log into the database file itself
// (that costs fsyncs inside the commit); the checkpointer does it in the
// background, at once after a few MB, or when commits stop.
func TestCheckpointsRunInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTest(t, path)
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	o.ck.halt() // so that nothing but the commit itself could checkpoint
	body := []byte(strings.Repeat("x", 4096))
	// 2,000 pages and more: past SQLite's default autocheckpoint of 1,000.
	err := o.Update(ctx, func(tx *Tx) error {
		for i := range 2000 {
			if _, err := tx.AddMessage(ctx, NewMessage{DeliveryID: fmt.Sprintf("d-%d", i), Body: body,
				Items: []MessageItem{{Code: fmt.Sprintf("I%d", i), Version: 1, Op: "upsert"}}}, t0); err != nil {
				return err
			}
		}
		return nil
	})
	must(t, err)
	if got := size(); got > before+1<<20 {
		t.Fatalf("the database file grew from %d to %d bytes in the commit: the commit checkpointed", before, got)
	}
	o.ck.start() // the commit's signal is still pending
	deadline := time.Now().Add(5 * time.Second)
	for size() < 8<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes 5s after the commit: no checkpoint ran", size())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A small commit is checkpointed once commits stop for checkpointIdle.
	grown := size()
	must(t, o.Update(ctx, func(tx *Tx) error {
		_, err := tx.AddMessage(ctx, NewMessage{DeliveryID: "small", Body: []byte(strings.Repeat("y", 64<<10)),
			Items: []MessageItem{{Code: "S", Version: 1, Op: "upsert"}}}, t0)
		return err
	}))
	deadline = time.Now().Add(checkpointIdle + 5*time.Second)
	for size() < grown+64<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes %s after a small commit: no idle checkpoint", size(), checkpointIdle+5*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// What was checkpointed reads back.
	m, err := o.GetByDeliveryID(ctx, "d-1999")
	must(t, err)
	if len(m.Body) != len(body) {
		t.Errorf("body of d-1999 is %d bytes, want %d", len(m.Body), len(body))
	}
}
