package site

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/outbox"
)

// TestHousekeepingPrunesAndAlarms: delivered messages older than the
// retention go, dead letters stay; a backlog past the threshold raises one
// alarm (repeated only after alarmRepeat) and its end is logged.
func TestHousekeepingPrunesAndAlarms(t *testing.T) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []int64
	must(t, ob.Update(ctx, func(tx *outbox.Tx) error {
		for i, code := range []string{"A", "B", "C", "D"} {
			id, err := tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: "d-" + code, Body: []byte("{}"),
				Items: []outbox.MessageItem{{Code: code, Version: int64(i + 1), Op: "upsert"}}}, t0)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}))
	must(t, ob.MarkDelivered(ctx, ids[0], 200, t0))
	must(t, ob.MarkDead(ctx, ids[1], 422, "bad", t0))

	var logBuf strings.Builder
	now := t0.Add(8 * 24 * time.Hour)
	d := New(&config.Site{Outbox: config.Outbox{Retention: 7 * 24 * time.Hour, AlarmPending: 1, AlarmAge: time.Hour}}, Options{
		Logger: slog.New(slog.NewTextHandler(&logBuf, nil)),
		Now:    func() time.Time { return now },
	})
	alarmed := d.housekeep(ctx, ob, time.Time{})
	st, err := ob.Stats(ctx)
	must(t, err)
	if st.Delivered != 0 || st.Dead != 1 || st.Pending != 2 {
		t.Fatalf("after pruning: %+v, want 0 delivered, 1 dead, 2 pending", st)
	}
	if alarmed.IsZero() || strings.Count(logBuf.String(), "backlog alarm") != 1 {
		t.Fatalf("no alarm for 2 pending over a threshold of 1:\n%s", logBuf.String())
	}
	now = now.Add(time.Minute)
	alarmed = d.housekeep(ctx, ob, alarmed)
	if strings.Count(logBuf.String(), "backlog alarm") != 1 {
		t.Error("the alarm repeated within alarmRepeat")
	}
	now = now.Add(alarmRepeat)
	alarmed = d.housekeep(ctx, ob, alarmed)
	if strings.Count(logBuf.String(), "backlog alarm") != 2 {
		t.Error("a persisting alarm was not repeated after alarmRepeat")
	}
	must(t, ob.MarkDelivered(ctx, ids[2], 200, now))
	must(t, ob.MarkDelivered(ctx, ids[3], 200, now))
	if alarmed = d.housekeep(ctx, ob, alarmed); alarmed.IsZero() {
		t.Error("nothing pending but a dead letter, and no alarm: a dead letter is a change the receiver does not have")
	}
	_, err = ob.PurgeDead(ctx, []int64{ids[1]})
	must(t, err)
	if alarmed = d.housekeep(ctx, ob, alarmed); !alarmed.IsZero() || !strings.Contains(logBuf.String(), "back to normal") {
		t.Errorf("the end of the backlog was not logged:\n%s", logBuf.String())
	}
}

// TestHousekeepingSkipsAnIdleOutbox: while no commit reaches a clean outbox,
// housekeeping rounds are skipped (hundreds of idle sites would each read
// their outbox every minute); a message queued by another handle, as
// `erpsync resync` queues, brings them back at the next tick.
func TestHousekeepingSkipsAnIdleOutbox(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob, err := outbox.Open(ctx, path)
	must(t, err)
	defer ob.Close()
	p := New(&config.Site{Outbox: config.Outbox{Retention: time.Hour}}, Options{HousekeepingEvery: 10 * time.Millisecond})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.housekeeping(runCtx, ob, func() {}); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	before := p.rounds.Load()
	time.Sleep(500 * time.Millisecond) // about 50 ticks
	if n := p.rounds.Load() - before; n > 1 {
		t.Errorf("%d housekeeping rounds on an idle clean outbox in 500 ms, want at most 1", n)
	}
	other, err := outbox.Open(ctx, path)
	must(t, err)
	defer other.Close()
	must(t, other.Update(ctx, func(tx *outbox.Tx) error {
		_, err := tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: "d-A", Body: []byte("{}"),
			Items: []outbox.MessageItem{{Code: "A", Version: 1, Op: "upsert"}}}, time.Now())
		return err
	}))
	deadline := time.Now().Add(5 * time.Second)
	for p.outboxClean() {
		if time.Now().After(deadline) {
			t.Fatal("a message queued by another handle was not seen by housekeeping within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
