package outbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestShiftSchedule(t *testing.T) {
	ctx := context.Background()
	o, err := Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ids := make([]int64, 3)
	if err := o.Update(ctx, func(tx *Tx) error {
		for i := range ids {
			id, err := tx.AddMessage(ctx, NewMessage{DeliveryID: string(rune('a' + i)), Body: []byte("{}"),
				Items: []MessageItem{{Code: string(rune('A' + i)), Version: 1, Op: "upsert"}}}, t0)
			if err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Scheduled before the step: in 10 min, in 70 min, and due already.
	for i, in := range []time.Duration{10 * time.Minute, 70 * time.Minute, -time.Minute} {
		if err := o.Reschedule(ctx, ids[i], t0.Add(in)); err != nil {
			t.Fatal(err)
		}
	}
	// The clock stepped back an hour: now reads t0 - 1h.
	now := t0.Add(-time.Hour)
	n, err := o.ShiftSchedule(ctx, now, time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("ShiftSchedule = %d, %v; want 3 moved", n, err)
	}
	for i, want := range []time.Time{now.Add(10 * time.Minute), now.Add(70 * time.Minute), now} {
		m, err := o.Get(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if !m.NextAttemptAt.Equal(want) {
			t.Errorf("message %d: next attempt %s, want %s", i, m.NextAttemptAt, want)
		}
	}
}
