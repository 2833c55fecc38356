package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
)

// hook wraps the reference receiver: after the receiver answered 200
// "accepted" to a request, it counts the item entries and tells waiters. Every
// request is verified by the receiver itself (signature, window, canonical
// body, tenant, delivery id) before it counts.
type hook struct {
	rcv *receiver.Receiver

	conns    atomic.Int64 // TCP connections accepted
	requests atomic.Int64 // requests the receiver accepted
	accepted atomic.Int64 // item entries in accepted requests
	target   atomic.Int64 // when > 0: record the moment accepted reaches it
	reached  atomic.Int64 // unix nanoseconds when accepted reached target; 0 before

	mu      sync.Mutex
	code    []byte         // `"item_code":"X"` of the item a latency waiter waits for
	arrived chan time.Time // gets the acceptance time of a request holding code
}

// ServeHTTP runs the receiver and looks at its answer.
func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &recorder{ResponseWriter: w}
	h.rcv.ServeHTTP(rec, r)
	if rec.status != http.StatusOK || !bytes.HasPrefix(rec.buf.Bytes(), []byte(`{"status":"accepted"`)) {
		return
	}
	now := time.Now()
	// {"status":"accepted","items":N}
	n, _ := strconv.ParseInt(string(bytes.TrimRight(bytes.TrimPrefix(rec.buf.Bytes(), []byte(`{"status":"accepted","items":`)), "}\n")), 10, 64)
	h.requests.Add(1)
	total := h.accepted.Add(n)
	if t := h.target.Load(); t > 0 && total >= t && total-n < t {
		h.reached.Store(now.UnixNano())
	}
	h.mu.Lock()
	if h.code != nil && bytes.Contains(body, h.code) {
		select {
		case h.arrived <- now:
		default:
		}
	}
	h.mu.Unlock()
}

// expect starts counting n more accepted entries from now.
func (h *hook) expect(n int) {
	h.reached.Store(0)
	h.target.Store(h.accepted.Load() + int64(n))
}

// reachedAt returns when the expected count was reached, if it was.
func (h *hook) reachedAt() (time.Time, bool) {
	ns := h.reached.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// awaitItem arms a waiter for the next accepted request holding code.
func (h *hook) awaitItem(code string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	h.mu.Lock()
	h.code = []byte(`"item_code":"` + code + `"`)
	h.arrived = ch
	h.mu.Unlock()
	return ch
}

func (h *hook) disarm() {
	h.mu.Lock()
	h.code, h.arrived = nil, nil
	h.mu.Unlock()
}

// recorder keeps the status and the (short) answer of the receiver.
type recorder struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.buf.Len() < 256 {
		r.buf.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// serve runs h on a loopback port until ctx ends; stop waits for shutdown.
func serve(ctx context.Context, h *hook) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				h.conns.Add(1)
			}
		}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}
	go func() {
		<-ctx.Done()
		stop()
	}()
	return "http://" + ln.Addr().String() + "/erpnext/items", stop, nil
}
