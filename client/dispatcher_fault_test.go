package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// faultServer is an ingestion endpoint on loopback that answers every
// request with status, except that a request whose body holds the item
// code refuse is answered with refuseStatus. It counts requests, and the
// most it had under way at once since the last resetPeak.
type faultServer struct {
	*httptest.Server
	status       atomic.Int32
	refuse       string // item code; "" none
	refuseStatus int
	path         string // only this path answers as above; others get 404. "" any path

	hits atomic.Int32
	mu   sync.Mutex
	now  int              // requests under way
	peak int              // most under way at once since resetPeak
	took map[string]int   // item code -> times accepted (2xx)
	seen map[string]int32 // status -> count, for failure messages
}

func newFaultServer(t *testing.T, status int) *faultServer {
	s := &faultServer{took: map[string]int{}, seen: map[string]int32{}}
	s.status.Store(int32(status))
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	s.now++
	s.peak = max(s.peak, s.now)
	s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	var b struct {
		Items []struct {
			Code string `json:"item_code"`
		} `json:"items"`
	}
	_ = json.Unmarshal(body, &b)
	status := int(s.status.Load())
	switch {
	case s.path != "" && r.URL.Path != s.path:
		status = http.StatusNotFound
	case s.refuse != "" && status < 300 && strings.Contains(string(body), `"item_code":"`+s.refuse+`"`):
		status = s.refuseStatus
	}
	s.mu.Lock()
	// Counted out before the answer is written: the client's request
	// outlasts this span, so two spans that overlap here were two requests
	// under way at once.
	s.now--
	s.seen[fmt.Sprint(status)]++
	if status >= 200 && status < 300 {
		for _, it := range b.Items {
			s.took[it.Code]++
		}
	}
	s.mu.Unlock()
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "/v2/items")
	}
	w.WriteHeader(status)
	if status >= 300 {
		fmt.Fprintf(w, "refused with %d", status)
	}
}

// resetPeak starts a new count of requests under way at once, from those
// under way now.
func (s *faultServer) resetPeak() {
	s.mu.Lock()
	s.peak = s.now
	s.mu.Unlock()
}

func (s *faultServer) peakNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func (s *faultServer) accepted() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.took)
}

func (s *faultServer) statuses() map[string]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.seen)
}

// faultRig is a dispatcher delivering a real outbox file to a faultServer.
type faultRig struct {
	t    *testing.T
	ob   *outbox.Outbox
	cl   *Client
	cfg  Config
	d    *Dispatcher
	logs *syncBuffer
	seq  int // item versions
	// before is how many messages were delivered before the fault.
	before int64
}

const (
	rigConcurrency = 4
	rigMaxWait     = 200 * time.Millisecond
)

func newFaultRig(t *testing.T, url string) *faultRig {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	t.Cleanup(func() { ob.Close() })
	key, _ := signer.DecodeSecret("ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM=")
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	cfg := Config{URL: url, TenantID: "t", Key: key, Retries: -1, Timeout: 5 * time.Second, Logger: logger}
	cl, err := New(cfg)
	must(t, err)
	d := NewDispatcher(ob, cl, DispatcherConfig{Tenant: "t", Concurrency: rigConcurrency, MaxWait: rigMaxWait, Logger: logger})
	return &faultRig{t: t, ob: ob, cl: cl, cfg: cfg, d: d, logs: logs}
}

// run starts the dispatcher until the test ends.
func (r *faultRig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.d.Run(ctx); close(done) }()
	r.t.Cleanup(func() { cancel(); <-done })
}

// add stores one message per batch of item codes and wakes the dispatcher.
func (r *faultRig) add(batches ...[]string) {
	ctx := context.Background()
	must(r.t, r.ob.Update(ctx, func(tx *outbox.Tx) error {
		for _, codes := range batches {
			id, err := signer.NewDeliveryID()
			if err != nil {
				return err
			}
			var entries [][]byte
			var items []outbox.MessageItem
			for _, code := range codes {
				r.seq++
				entries = append(entries, fmt.Appendf(nil, `{"item_code":%q,"op":"upsert","version":%d}`, code, r.seq))
				items = append(items, outbox.MessageItem{Code: code, Version: int64(r.seq), Op: "upsert"})
			}
			body, err := signer.Body(id, "t", entries)
			if err != nil {
				return err
			}
			if _, err := tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: id, Items: items, Body: body}, time.Now()); err != nil {
				return err
			}
		}
		return nil
	}))
	r.d.Wake()
}

// addSingles stores n one-item messages with codes prefix01, prefix02, ...
func (r *faultRig) addSingles(prefix string, n int) {
	var batches [][]string
	for i := range n {
		batches = append(batches, []string{fmt.Sprintf("%s%02d", prefix, i+1)})
	}
	r.add(batches...)
}

func (r *faultRig) stats() outbox.Stats {
	st, err := r.ob.Stats(context.Background())
	must(r.t, err)
	return st
}

// waitFor polls cond until it holds; it fails the test after 20s.
func (r *faultRig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("not within 20s: %s; outbox %+v\nlog:\n%s", what, r.stats(), r.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkPaused waits until the dispatcher paused delivery and the requests
// under way when it did have ended, then watches three more requests: all
// must be probes, one at a time, and every message must stay pending. It
// fails at once when a message is dead-lettered or delivered meanwhile.
func (r *faultRig) checkPaused(srv *faultServer, pending int64) {
	r.t.Helper()
	r.waitFor("delivery paused", func() bool {
		if st := r.stats(); st.Dead > 0 || st.Delivered > r.before {
			r.t.Fatalf("outbox %+v while the endpoint is wrong (server saw %v): want every message kept pending\nlog:\n%s",
				st, srv.statuses(), r.logs.String())
		}
		why, _ := r.d.Paused()
		return why != "" && !r.d.busy()
	})
	// The requests that met the fault together have ended: from now on
	// the dispatcher sends probes alone.
	srv.resetPeak()
	h := srv.hits.Load()
	r.waitFor("three more probes", func() bool { return srv.hits.Load() >= h+3 })
	if peak := srv.peakNow(); peak > 1 {
		r.t.Errorf("%d requests under way at once while delivery was paused, want one probe at a time", peak)
	}
	if st := r.stats(); st.Pending != pending || st.Dead != 0 {
		r.t.Errorf("outbox %+v while paused: want %d pending, none dead", st, pending)
	}
}

// TestDispatcherPausesOnWrongEndpoint: an answer that says the endpoint
// itself is wrong (3xx, never followed; 404; 405), or that the signature is
// refused (401, 403), dead-letters nothing: delivery pauses, with one probe
// at a time, the alarm is logged once, and every message is delivered
// without a restart once the endpoint accepts.
func TestDispatcherPausesOnWrongEndpoint(t *testing.T) {
	const n = 20
	tests := []struct {
		status int
		alarm  string   // the alarm line's start, logged once per pause
		level  string   // its level
		says   []string // what else the alarm line says
	}{
		{301, `msg="delivery paused: wrong ingest.url: `, "ERROR", []string{"answered 301 Moved Permanently, a redirect to SRV/v2/items"}},
		{302, `msg="delivery paused: wrong ingest.url: `, "ERROR", []string{"answered 302 Found, a redirect to SRV/v2/items"}},
		{307, `msg="delivery paused: wrong ingest.url: `, "ERROR", []string{"answered 307 Temporary Redirect, a redirect to SRV/v2/items"}},
		{308, `msg="delivery paused: wrong ingest.url: `, "ERROR", []string{"answered 308 Permanent Redirect, a redirect to SRV/v2/items"}},
		{404, `msg="delivery paused: wrong ingest.url: `, "ERROR", []string{"answered 404 Not Found"}},
		{405, `msg="delivery paused: wrong ingest.url: `, "ERROR", []string{"answered 405 Method Not Allowed"}},
		{401, `msg="delivery paused: the ingestion service rejected the signature`, "WARN", nil},
		{403, `msg="delivery paused: the ingestion service rejected the signature`, "WARN", nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()
			srv := newFaultServer(t, tt.status)
			r := newFaultRig(t, srv.URL+"/ingest")
			r.addSingles("I", n)
			r.run()
			r.checkPaused(srv, n)

			log := r.logs.String()
			var alarms []string
			for line := range strings.Lines(log) {
				if strings.Contains(line, tt.alarm) {
					alarms = append(alarms, line)
				}
			}
			if len(alarms) != 1 {
				t.Errorf("%d alarm lines %s…, want one per pause:\n%s", len(alarms), tt.alarm, log)
			} else {
				says := []string{"level=" + tt.level, fmt.Sprintf("status=%d", tt.status)}
				if tt.level == "ERROR" {
					says = append(says, "wrong ingest.url: "+srv.URL+"/ingest answered",
						"check ingest.url in the settings; erpsync never follows redirects", "Every message is kept")
				}
				for _, s := range append(says, tt.says...) {
					if s = strings.ReplaceAll(s, "SRV", srv.URL); !strings.Contains(alarms[0], s) {
						t.Errorf("the alarm lacks %q:\n%s", s, alarms[0])
					}
				}
			}
			why, since := r.d.Paused()
			if !strings.Contains(why, fmt.Sprint(tt.status)) || since.IsZero() || time.Since(since) < 0 {
				t.Errorf("Paused() = %q, %v; want the %d named and when the pause began", why, since, tt.status)
			}

			srv.status.Store(http.StatusOK)
			r.waitFor("every message delivered once the endpoint accepts", func() bool { return r.stats().Delivered == n })
			if st := r.stats(); st.Pending != 0 || st.Dead != 0 {
				t.Errorf("outbox %+v after the endpoint accepted, want all %d delivered", st, n)
			}
			if why, _ := r.d.Paused(); why != "" {
				t.Errorf("Paused() = %q after the endpoint accepted, want \"\"", why)
			}
			if got := srv.accepted(); len(got) != n {
				t.Errorf("the endpoint took %d items, want %d: %v", len(got), n, got)
			}
			if !strings.Contains(r.logs.String(), "ingestion endpoint accepts deliveries again") {
				t.Error("no line says that delivery resumed")
			}
		})
	}
}

// TestDispatcherSplitsRefusedBatch: a 4xx that refuses an item (400, 409,
// 415, 422, and others not named elsewhere, such as 418) splits the batch
// down to that item; only its message is dead-lettered, with the response,
// and the seven other items are delivered.
func TestDispatcherSplitsRefusedBatch(t *testing.T) {
	codes := []string{"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"}
	const poison = "B6"
	for _, status := range []int{400, 409, 415, 422, 418} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := newFaultServer(t, http.StatusOK)
			srv.refuse, srv.refuseStatus = poison, status
			r := newFaultRig(t, srv.URL)
			r.add(codes)
			r.run()
			r.waitFor("nothing pending", func() bool { return r.stats().Pending == 0 })

			ctx := context.Background()
			dead, err := r.ob.List(ctx, outbox.Dead, 0)
			must(t, err)
			if len(dead) != 1 || len(dead[0].Items) != 1 || dead[0].Items[0].Code != poison {
				var got [][]outbox.MessageItem
				for _, m := range dead {
					got = append(got, m.Items)
				}
				t.Fatalf("dead letters hold %v, want one message holding only %s", got, poison)
			}
			if m := dead[0]; m.LastStatus != status || !strings.Contains(m.LastError, fmt.Sprintf("refused with %d", status)) {
				t.Errorf("dead letter status %d, error %q: want %d and the response kept", m.LastStatus, m.LastError, status)
			}
			delivered, err := r.ob.List(ctx, outbox.Delivered, 0)
			must(t, err)
			var got []string
			for _, m := range delivered {
				for _, it := range m.Items {
					got = append(got, it.Code)
				}
			}
			slices.Sort(got)
			want := slices.DeleteFunc(slices.Clone(codes), func(c string) bool { return c == poison })
			if !slices.Equal(got, want) {
				t.Errorf("delivered items %v, want %v", got, want)
			}
			took := srv.accepted()
			for _, c := range want {
				if took[c] != 1 {
					t.Errorf("the endpoint took %s %d times, want once (took %v)", c, took[c], took)
				}
			}
			if took[poison] != 0 {
				t.Errorf("the endpoint took the refused item %s", poison)
			}
		})
	}
}

// TestDispatcherReloadToWrongURL: a reload that sets a mistyped ingest.url
// (its path 404s) dead-letters nothing: delivery pauses, and a reload back
// to the right URL resumes it at once, without a restart.
func TestDispatcherReloadToWrongURL(t *testing.T) {
	srv := newFaultServer(t, http.StatusOK)
	srv.path = "/ingest"
	r := newFaultRig(t, srv.URL+"/ingest")
	r.addSingles("A", 10)
	r.run()
	r.waitFor("the first messages delivered", func() bool { return r.stats().Delivered == 10 })
	r.before = 10

	wrong := r.cfg
	wrong.URL = srv.URL + "/ingets"
	must(t, r.cl.SetConfig(wrong))
	r.d.Reconfigure(rigConcurrency, rigMaxWait)
	r.addSingles("B", 20)
	r.checkPaused(srv, 20)
	if why, _ := r.d.Paused(); !strings.Contains(why, "/ingets answered 404 Not Found") {
		t.Errorf("Paused() = %q, want the wrong URL and its 404 named", why)
	}

	// A reload to another wrong URL is refused again: the alarm is raised
	// again, and nothing is lost.
	alarms := strings.Count(r.logs.String(), `msg="delivery paused: wrong ingest.url`)
	wrong.URL = srv.URL + "/ingestt"
	must(t, r.cl.SetConfig(wrong))
	r.d.Reconfigure(rigConcurrency, rigMaxWait)
	r.waitFor("the alarm raised again after the reload", func() bool {
		return strings.Count(r.logs.String(), `msg="delivery paused: wrong ingest.url`) > alarms
	})

	must(t, r.cl.SetConfig(r.cfg))
	r.d.Reconfigure(rigConcurrency, rigMaxWait)
	r.waitFor("every message delivered after the reload back", func() bool { return r.stats().Delivered == 30 })
	if st := r.stats(); st.Pending != 0 || st.Dead != 0 {
		t.Errorf("outbox %+v, want all 30 delivered", st)
	}
	if why, _ := r.d.Paused(); why != "" {
		t.Errorf("Paused() = %q after the reload back, want \"\"", why)
	}
}
