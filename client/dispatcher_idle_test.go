package client

import (
	"context"
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

// TestDispatcherIdleReadsNoOutbox: with nothing to send, the dispatcher does
// not query its outbox at every recheck (hundreds of idle sites would); a
// message that another process queues (another handle on the file, as
// `erpsync resync` is) is still picked up at the next recheck.
func TestDispatcherIdleReadsNoOutbox(t *testing.T) {
	ctx := context.Background()
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob, err := outbox.Open(ctx, path)
	must(t, err)
	defer ob.Close()
	key, _ := signer.DecodeSecret("ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM=")
	cl, err := New(Config{URL: srv.URL, TenantID: "t", Key: key, Retries: -1, Timeout: 2 * time.Second})
	must(t, err)
	d := NewDispatcher(ob, cl, DispatcherConfig{Tenant: "t", Concurrency: 1, MaxWait: time.Second})
	d.idle = 20 * time.Millisecond
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	claims := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.claims
	}
	time.Sleep(200 * time.Millisecond) // the first look, and the one its own writes (if any) cause
	before := claims()
	time.Sleep(time.Second) // about 50 rechecks
	if n := claims() - before; n > 1 {
		t.Errorf("an idle dispatcher read its outbox %d times in 1 s of 20 ms rechecks, want at most 1", n)
	}

	other, err := outbox.Open(ctx, path)
	must(t, err)
	defer other.Close()
	must(t, other.Update(ctx, func(tx *outbox.Tx) error {
		entry := []byte(`{"item_code":"A","op":"upsert","version":1}`)
		body, err := signer.Body("d-A", "t", [][]byte{entry})
		if err != nil {
			return err
		}
		_, err = tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: "d-A", Body: body,
			Items: []outbox.MessageItem{{Code: "A", Version: 1, Op: "upsert"}}}, time.Now())
		return err
	}))
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a message another handle queued was not sent within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
