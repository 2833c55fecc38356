package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// TestDispatcherRetryAfterCapped: a Retry-After is honoured but capped by
// ingest.retry_max_wait, and holds back all delivery, not just the message
// that met it.
func TestDispatcherRetryAfterCapped(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	must(t, ob.Update(ctx, func(tx *outbox.Tx) error {
		for i, code := range []string{"A", "B"} {
			entry := []byte(`{"item_code":"` + code + `","op":"upsert","version":` + fmt.Sprint(i+1) + `}`)
			body, err := signer.Body("d-"+code, "t", [][]byte{entry})
			if err != nil {
				return err
			}
			if _, err := tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: "d-" + code, Body: body,
				Items: []outbox.MessageItem{{Code: code, Version: int64(i + 1), Op: "upsert"}}}, time.Now()); err != nil {
				return err
			}
		}
		return nil
	}))
	key, _ := signer.DecodeSecret("ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM=")
	cl, err := New(Config{URL: srv.URL, TenantID: "t", Key: key, Retries: -1, Timeout: 2 * time.Second})
	must(t, err)
	const maxWait = 3 * time.Second
	d := NewDispatcher(ob, cl, DispatcherConfig{Tenant: "t", Concurrency: 1, MaxWait: maxWait})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(10 * time.Second)
	var m outbox.Message
	for {
		msgs, err := ob.List(ctx, outbox.Pending, 0)
		must(t, err)
		if len(msgs) == 2 && msgs[1].Attempts > 0 { // the older message (A) went first
			m = msgs[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attempt recorded within 10s: %+v", msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if wait := m.NextAttemptAt.Sub(m.UpdatedAt); wait < maxWait-100*time.Millisecond || wait > maxWait+100*time.Millisecond {
		t.Errorf("next attempt %s after a Retry-After of 3600s, want the cap %s", wait, maxWait)
	}
	d.mu.Lock()
	held := time.Until(d.pausedUntil)
	d.mu.Unlock()
	if held < maxWait-time.Second || held > maxWait {
		t.Errorf("delivery held for %s after the Retry-After, want about %s", held, maxWait)
	}
	time.Sleep(maxWait / 2)
	if st, err := ob.Stats(ctx); err != nil || st.Pending != 2 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	msgs, err := ob.List(ctx, outbox.Pending, 0)
	must(t, err)
	if msgs[0].Attempts != 0 {
		t.Error("the other message was sent while the Retry-After held delivery back")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDispatcherSurvivesClockSteppingBack: a message waiting for its next
// attempt does not wait out a step of the wall clock back by an hour.
func TestDispatcherSurvivesClockSteppingBack(t *testing.T) {
	ctx := context.Background()
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	var id int64
	must(t, ob.Update(ctx, func(tx *outbox.Tx) error {
		body, err := signer.Body("d-A", "t", [][]byte{[]byte(`{"item_code":"A","op":"upsert","version":1}`)})
		if err != nil {
			return err
		}
		id, err = tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: "d-A", Body: body,
			Items: []outbox.MessageItem{{Code: "A", Version: 1, Op: "upsert"}}}, time.Now())
		return err
	}))
	must(t, ob.Reschedule(ctx, id, time.Now().Add(3*time.Second))) // a retry 3 s away
	key, _ := signer.DecodeSecret("ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM=")
	cl, err := New(Config{URL: srv.URL, TenantID: "t", Key: key, Retries: -1, Timeout: 2 * time.Second})
	must(t, err)
	d := NewDispatcher(ob, cl, DispatcherConfig{Tenant: "t", Concurrency: 1, MaxWait: time.Hour})
	var back atomic.Int64 // how far the wall clock has stepped back
	d.now = func() time.Time { return time.Now().Round(0).Add(-time.Duration(back.Load())) }
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(500 * time.Millisecond)
	back.Store(int64(time.Hour))
	deadline := time.Now().Add(15 * time.Second)
	for got.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the message was not sent within 15 s of its due time: it waits out the clock's step back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
