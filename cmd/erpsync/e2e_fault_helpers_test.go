package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// The fault suite's shape: every case changes faultItems items while a fault
// is on, clears the fault, and waits until the receiver holds what the
// database holds.
const (
	faultItems     = 2000
	faultBatchSize = 25
	faultDeleted   = 5 // items the standard change deletes (deleteSome)
	faultPageSize  = 100
	faultSettings  = "batch_size = 25\nconcurrency = 4\n"
	// faultRecoveryLimit bounds the wait for the receiver to equal the
	// database once a fault is cleared.
	faultRecoveryLimit = 30 * time.Second
	// faultMinDuration is how long a receiver fault stays on at least: past
	// the client's in-call retries (3 attempts, Retry-After 2 s) and past
	// the 2 s replay window of the down case by more than twice.
	faultMinDuration = 5 * time.Second
)

// faultMode is what the fault receiver does to each request.
type faultMode int32

const (
	faultNone  faultMode = iota
	fault503             // 503 Service Unavailable
	fault429             // 429 Too Many Requests, Retry-After: 2
	faultDrop            // close the connection: half before taking the request in, half after (answer lost)
	faultHang            // answer only after the agent's timeout, taking the request in then
	faultStall           // answer nothing until the agent gives up, and take nothing in
)

// faultRun is one fault case: an ERPNext site in the shared MariaDB, a
// verifying receiver that the test makes misbehave (receiver.Options.Fault,
// and a listener it can close and reopen on the same port), and the agent,
// in-process (e2e.start) or as the built binary.
type faultRun struct {
	*sitetest.Env
	t *testing.T

	mode    atomic.Int32 // faultMode
	poison  string       // item code the receiver refuses with 422
	hangFor time.Duration
	dropped atomic.Int64

	addr string // the receiver's host:port, kept across down/up
	srv  *http.Server

	outboxPath string

	deleted map[string]bool // items this test deleted or renamed away

	bin       *exec.Cmd // the agent as a process (startBinary)
	binDone   chan error
	binStderr *sitetest.LockedBuffer

	order     *orderCheck   // item states in the order the receiver accepted them
	outputs   []namedOutput // what the commands a case ran printed, searched for secrets
	dbRetries atomic.Int64  // database statements of the test that failed and were retried (retryDB)

	// recoveryLimit bounds the wait for the receiver to equal the
	// database (waitEqual); 0: faultRecoveryLimit.
	recoveryLimit time.Duration
}

// namedOutput is what one command printed.
type namedOutput struct{ name, text string }

type faultOptions struct {
	items     int           // seeded before the agent starts
	pageSize  int           // erp.page_size; default faultPageSize
	window    time.Duration // the receiver's replay window; default signer.Window
	poison    string
	outboxDir string // where the outbox lives; default the test's directory
}

func newFaultRun(t *testing.T, o faultOptions) *faultRun {
	t.Helper()
	e := sitetest.New(t, sitetest.Options{Items: o.items, Settings: faultSettings})
	f := &faultRun{Env: e, t: t, poison: o.poison, hangFor: 2500 * time.Millisecond, deleted: map[string]bool{}, order: newOrderCheck()}
	key, err := signer.DecodeSecret(e.Secret)
	must(t, err)
	// The harness's own receiver stays idle: this one is served on a
	// listener the test can take down and bring back. Its Out tells the
	// order check every item state it accepts.
	e.Rcv = receiver.New(receiver.Options{Tenants: map[string][]byte{sitetest.Tenant: key}, Window: o.window, Fault: f.fault, Out: f.order})
	pageSize := faultPageSize
	if o.pageSize > 0 {
		pageSize = o.pageSize
	}
	f.addr = "127.0.0.1:0"
	f.up()
	t.Cleanup(f.down)
	newURL := "http://" + f.addr + "/ingest"
	cfg, err := os.ReadFile(e.CfgPath)
	must(t, err)
	s := strings.Replace(string(cfg), fmt.Sprintf("url = %q", e.URL), fmt.Sprintf("url = %q", newURL), 1)
	s = strings.Replace(s, "page_size = 100", fmt.Sprintf("page_size = %d", pageSize), 1)
	// After a bulk change every poll re-reads erp.overlap (5 minutes) of
	// rows: a few thousand. Polling 20 times a second would spend the
	// suite's CPU on that.
	s = strings.Replace(s, `poll_interval = "50ms"`, `poll_interval = "250ms"`, 1)
	if o.outboxDir != "" {
		s = strings.Replace(s, fmt.Sprintf("path = %q", filepath.Join(e.Dir, "outbox.db")), fmt.Sprintf("path = %q", filepath.Join(o.outboxDir, "outbox.db")), 1)
	}
	if !strings.Contains(s, newURL) || !strings.Contains(s, fmt.Sprintf("page_size = %d", pageSize)) || !strings.Contains(s, `poll_interval = "250ms"`) {
		t.Fatalf("could not point the settings at the fault receiver:\n%s", s)
	}
	must(t, os.WriteFile(e.CfgPath, []byte(s), 0o600))
	e.URL = newURL
	f.outboxPath = filepath.Join(e.Dir, "outbox.db")
	if o.outboxDir != "" {
		f.outboxPath = filepath.Join(o.outboxDir, "outbox.db")
	}
	t.Cleanup(func() {
		if f.bin != nil {
			f.kill9()
		}
		if t.Failed() && f.binStderr != nil {
			out := f.binStderr.String()
			t.Logf("agent stderr (last 3000 bytes):\n%s", out[max(0, len(out)-3000):])
		}
	})
	return f
}

// fault is the receiver's Options.Fault. It shows the order check every
// body that may be accepted.
func (f *faultRun) fault(r *http.Request, body []byte) (int, http.Header, bool) {
	f.order.body(r.Header.Get(signer.HeaderDeliveryID), body)
	if f.poison != "" && bytes.Contains(body, []byte(`"item_code":"`+f.poison+`"`)) {
		return http.StatusUnprocessableEntity, nil, true
	}
	switch faultMode(f.mode.Load()) {
	case fault503:
		return http.StatusServiceUnavailable, nil, true
	case fault429:
		return http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}}, true
	case faultDrop:
		return receiver.Drop, nil, true
	case faultHang:
		// Past the agent's timeout, then take the request in: the agent
		// never sees the answer and must send it again, with the same
		// delivery id.
		time.Sleep(f.hangFor)
	case faultStall:
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		return http.StatusServiceUnavailable, nil, true
	}
	return 0, nil, false
}

func (f *faultRun) set(m faultMode) { f.mode.Store(int32(m)) }

// serve is the receiver behind the listener; for faultDrop every other
// request is taken in before its connection is closed, so its answer is lost.
func (f *faultRun) serve(w http.ResponseWriter, r *http.Request) {
	if faultMode(f.mode.Load()) == faultDrop && f.dropped.Add(1)%2 == 0 {
		f.Rcv.ServeHTTP(discardResponse{}, r)
		panic(http.ErrAbortHandler)
	}
	f.Rcv.ServeHTTP(w, r)
}

type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}

// up starts serving the receiver on f.addr (the same port after down).
func (f *faultRun) up() {
	f.t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatalf("receiver: listen on %s again: %v", f.addr, err)
	}
	f.addr = l.Addr().String()
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	srv := f.srv
	go srv.Serve(l)
}

// down closes the listener and every connection at once: the receiver is
// gone, connections are refused.
func (f *faultRun) down() {
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

// startBinary runs `erpsync run` as a process, as users do.
func (f *faultRun) startBinary() {
	f.t.Helper()
	cmd := exec.Command(erpsyncBinary(f.t), "run", "--config", f.CfgPath)
	if f.binStderr == nil {
		f.binStderr = &sitetest.LockedBuffer{}
	}
	cmd.Stderr = f.binStderr
	must(f.t, cmd.Start())
	f.bin, f.binDone = cmd, make(chan error, 1)
	done := f.binDone
	go func() { done <- cmd.Wait() }()
}

// kill9 kills the agent process with SIGKILL and waits until it is gone.
func (f *faultRun) kill9() {
	f.t.Helper()
	if f.bin == nil {
		return
	}
	f.bin.Process.Signal(syscall.SIGKILL)
	select {
	case <-f.binDone:
	case <-time.After(30 * time.Second):
		f.t.Fatal("agent did not die within 30s of SIGKILL")
	}
	f.bin = nil
}

// stopBinary sends SIGTERM and wants exit 0 within 20s.
func (f *faultRun) stopBinary() {
	f.t.Helper()
	must(f.t, f.bin.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-f.binDone:
		if err != nil {
			f.t.Errorf("erpsync run exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		f.t.Error("erpsync run did not exit within 20s of SIGTERM")
		f.kill9()
	}
	f.bin = nil
}

// retryDB runs fn until it succeeds, for edits that may meet a database
// that is restarting.
func (f *faultRun) retryDB(what string, fn func() error) {
	f.t.Helper()
	var err error
	for i := 0; i < 100; i++ {
		if err = fn(); err == nil {
			return
		}
		f.dbRetries.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("%s: %v", what, err)
}

// codes returns the item codes in tabItem, in name order.
func (f *faultRun) codes() []string {
	f.t.Helper()
	var codes []string
	f.retryDB("list items", func() error {
		codes = codes[:0]
		rows, err := f.DB.Query("SELECT name FROM tabItem ORDER BY name")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				return err
			}
			codes = append(codes, c)
		}
		return rows.Err()
	})
	return codes
}

// bulkUpdate changes the description of every given item, chunk items per
// UPDATE, as a script or a data import would, and stamps `modified`.
func (f *faultRun) bulkUpdate(round int, codes []string, chunk int, gap time.Duration) {
	f.t.Helper()
	for lo := 0; lo < len(codes); lo += chunk {
		part := codes[lo:min(lo+chunk, len(codes))]
		args := []any{fmt.Sprintf("<p>bulk change, round %d</p>", round), f.Site.Format(time.Now())}
		for _, c := range part {
			args = append(args, c)
		}
		q := "UPDATE `tabItem` SET `description` = ?, `modified` = ? WHERE `name` IN (?" + strings.Repeat(",?", len(part)-1) + ")"
		f.retryDB("bulk update", func() error {
			_, err := f.DB.Exec(q, args...)
			return err
		})
		if gap > 0 {
			time.Sleep(gap)
		}
	}
}

// bulkChange is the standard change of a case on a site that starts empty:
// faultItems items created, all changed again in chunks of 200 (while their
// first state still waits, under most faults), and five deleted.
// It returns how many distinct items changed.
func (f *faultRun) bulkChange() int {
	f.t.Helper()
	f.retryDB("seed", func() error { return f.Site.Seed(context.Background(), faultItems) })
	return f.updateAndDelete()
}

// updateAndDelete is bulkChange after the items were created.
func (f *faultRun) updateAndDelete() int {
	f.t.Helper()
	codes := f.codes()
	f.bulkUpdate(1, codes, 200, 20*time.Millisecond)
	f.deleteSome()
	return len(codes)
}

// deleteSome deletes faultDeleted Items: ITEM-00097, ITEM-00194, …
func (f *faultRun) deleteSome() {
	f.t.Helper()
	ctx := context.Background()
	for i := 1; i <= faultDeleted; i++ {
		code := fmt.Sprintf("ITEM-%05d", i*97)
		f.retryDB("delete "+code, func() error {
			err := f.Site.DeleteItem(ctx, code)
			if errors.Is(err, erpnext.ErrNotFound) {
				return nil
			}
			return err
		})
		f.deleted[code] = true
	}
}

// versionMark stands for the version in an expected entry; the receiver's
// entry must equal it with its own version in the mark's place.
const versionMark = `"version":987654321987654`

// expected is what the database holds, as the agent should have queued it
// and the receiver should hold it.
type expected struct {
	entries map[string]string // canonical item entry (op upsert, version versionMark) by code
	hashes  map[string]string // content hash as the queue computes it, by code
}

// dbState builds every item from the database.
func (f *faultRun) dbState() expected {
	f.t.Helper()
	ctx := context.Background()
	want := expected{}
	f.retryDB("build the items from the database", func() error {
		det, err := detector.New(ctx, f.DB, detector.Config{SiteURL: "https://erp.example.com"})
		if err != nil {
			return err
		}
		built, err := det.Build(ctx, f.codes())
		if err != nil {
			return err
		}
		want = expected{entries: map[string]string{}, hashes: map[string]string{}}
		for _, it := range built {
			if it.Deleted || it.Code == f.poison {
				continue // the poison item is refused by design
			}
			fields, err := sitetest.ContentFields(it)
			if err != nil {
				return err
			}
			entry := make(map[string]any, len(fields)+3)
			for k, v := range fields {
				entry[k] = v
			}
			entry["op"], entry["item_code"], entry["version"] = "upsert", it.Code, int64(987654321987654)
			b, err := signer.Canonical(entry)
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte(versionMark)) {
				return fmt.Errorf("expected entry of %s lacks %s: %s", it.Code, versionMark, b)
			}
			want.entries[it.Code] = string(b)
			if want.hashes[it.Code], err = sitetest.ContentHash(fields); err != nil {
				return err
			}
		}
		return nil
	})
	return want
}

// mismatches compares the receiver with want: items missing or different,
// and items that should be gone (this test deleted them) but are not.
func (f *faultRun) mismatches(want expected, checked map[string]string) []string {
	got := f.Rcv.Items(sitetest.Tenant)
	var bad []string
	for code, w := range want.entries {
		e, ok := got[code]
		if !ok {
			bad = append(bad, code+" missing")
			continue
		}
		key := e.DeliveryID + "/" + fmt.Sprint(e.Version)
		if checked[code] == key {
			continue
		}
		if string(e.Raw) != strings.Replace(w, versionMark, fmt.Sprintf(`"version":%d`, e.Version), 1) {
			bad = append(bad, code+" differs")
			continue
		}
		checked[code] = key
	}
	for code, e := range got {
		if _, ok := want.entries[code]; !ok && e.Op != "delete" {
			bad = append(bad, code+" should be deleted")
		}
	}
	return bad
}

// waitEqual waits until the receiver holds exactly what the database holds
// and returns how long that took and what still differed at the end (empty
// when equal).
func (f *faultRun) waitEqual(want expected) (time.Duration, []string) {
	start := time.Now()
	checked := map[string]string{}
	for {
		bad := f.mismatches(want, checked)
		if len(bad) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > f.recovery() {
			return time.Since(start), bad
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recovery is how long waitEqual waits.
func (f *faultRun) recovery() time.Duration {
	if f.recoveryLimit > 0 {
		return f.recoveryLimit
	}
	return faultRecoveryLimit
}

// attempts counts the HTTP attempts the agent has made ("HMAC signed" lines).
func (f *faultRun) attempts() int {
	return strings.Count(f.Log(), "msg=\"HMAC signed\"")
}

// backlog counts the item entries of pending messages and the distinct
// items among them, read from the outbox file as a second reader.
func (f *faultRun) backlog(outboxPath string) (entries, items int) {
	f.t.Helper()
	db, err := sql.Open("sqlite", "file:"+outboxPath+"?mode=ro&_pragma=busy_timeout(10000)")
	must(f.t, err)
	defer db.Close()
	must(f.t, db.QueryRow(`SELECT count(*), count(DISTINCT item_code) FROM message_items WHERE pending = 1`).Scan(&entries, &items))
	return entries, items
}

// waitQueued waits until the agent has queued the state the database holds
// for every item, and a delete for every item this test deleted (read from
// the outbox file's item states), and returns how long that took.
func (f *faultRun) waitQueued(want expected) time.Duration {
	f.t.Helper()
	start := time.Now()
	db, err := sql.Open("sqlite", "file:"+f.outboxPath+"?mode=ro&_pragma=busy_timeout(10000)")
	must(f.t, err)
	defer db.Close()
	for {
		behind := 0
		rows, err := db.Query(`SELECT item_code, hash, deleted FROM items`)
		must(f.t, err)
		queued := map[string]bool{}
		for rows.Next() {
			var code, hash string
			var deleted bool
			must(f.t, rows.Scan(&code, &hash, &deleted))
			if w, ok := want.hashes[code]; ok && !deleted && hash == w || !ok && deleted {
				queued[code] = true
			}
		}
		must(f.t, rows.Err())
		rows.Close()
		for code := range want.hashes {
			if !queued[code] {
				behind++
			}
		}
		for code := range f.deleted {
			if !queued[code] {
				behind++
			}
		}
		if behind == 0 {
			return time.Since(start)
		}
		if time.Since(start) > 90*time.Second {
			f.t.Fatalf("the agent had not queued %d items 90s after the change", behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// figures are what a case reports.
type figures struct {
	itemsChanged int
	attempts     int   // HTTP attempts by the agent during the case
	requests     int64 // requests the receiver saw during the case
	duplicates   int64 // requests repeating a delivery id already accepted
	restated     int64 // item states accepted again under another delivery id (must be 0)
	stale        int64 // states arriving with a version below one the receiver holds, ignored by it (must be 0)
	older        int   // states accepted although older than one accepted before: orderCheck (must be 0)
	lost         int   // items whose final state differs from the database (must be 0)
	secrets      int   // secrets found in any output: secretsFound, filled in by report (must be 0)
	recovery     time.Duration
	note         string
}

// report logs the figures in the one format the suite uses:
//
//	FAULT <case> items_changed=… attempts=… … older_after_newer=0 lost=0 secrets=0 recovery=…
//
// older_after_newer counts the item states that reached the receiver after
// a newer state of the same item had: those arriving with a lower version,
// which the receiver ignores (stale), and those it accepted with a higher
// version but an older content (orderCheck). It searches every output of
// the case for secrets (secretsFound) and fails the test unless restated,
// older_after_newer, lost and secrets are 0.
func (f *faultRun) report(name string, fig figures) {
	f.t.Helper()
	fig.secrets = f.secretsFound()
	f.t.Logf("FAULT %-28s items_changed=%d attempts=%d receiver_requests=%d duplicates=%d restated=%d older_after_newer=%d lost=%d secrets=%d recovery=%s %s",
		name, fig.itemsChanged, fig.attempts, fig.requests, fig.duplicates, fig.restated, fig.stale+int64(fig.older), fig.lost, fig.secrets,
		fig.recovery.Round(10*time.Millisecond), fig.note)
	if fig.older != 0 {
		examples := f.order.examples()
		code, _, _ := strings.Cut(examples[0], ":")
		// The agent logs each state it queues ("detected change … version=");
		// a state it did not log came from another writer (resync).
		var queued []string
		for _, v := range regexp.MustCompile(` v(\d+) `).FindAllStringSubmatch(examples[0], -1) {
			line := grepLines(f.Log(), "item="+code+" op=upsert version="+v[1]+" ", 1)
			if line == "" {
				line = "(v" + v[1] + " is not in the sync log)"
			}
			queued = append(queued, line)
		}
		f.t.Errorf("%s: %d item states were accepted after a newer state of the same item, e.g.\n%s\nthe agent queued them:\n%s",
			name, fig.older, strings.Join(examples, "\n"), strings.Join(queued, "\n"))
	}
	if fig.secrets != 0 {
		f.t.Errorf("%s: %d secrets in the outputs", name, fig.secrets)
	}
	if fig.lost != 0 {
		f.t.Errorf("%s: %d items lost", name, fig.lost)
	}
	if fig.restated != 0 {
		f.t.Errorf("%s: %d item states were accepted twice under different delivery ids: a repeat must reuse its delivery id", name, fig.restated)
	}
	if fig.stale != 0 {
		f.t.Errorf("%s: %d item states arrived after a newer state of the same item", name, fig.stale)
	}
}

// measure runs a case from the moment its fault is on: change makes the
// change (the fault on) and returns how many items it changed, hold (when
// not nil) keeps the fault on longer, clear clears the fault; then measure
// waits until the receiver equals the database and returns the figures.
func (f *faultRun) measure(change func() int, hold func(want expected), clear func()) figures {
	f.t.Helper()
	before, attemptsBefore, olderBefore := f.Rcv.Stats(), f.attempts(), f.order.older()
	changed := change()
	want := f.dbState() // the database no longer changes
	if hold != nil {
		hold(want)
	}
	clear()
	cleared := time.Now()
	_, bad := f.waitEqual(want)
	recovery := time.Since(cleared)
	after := f.Rcv.Stats()
	if len(bad) > 0 { // what the receiver and the outbox hold for a few of them
		ob, err := outbox.Open(context.Background(), f.outboxPath)
		must(f.t, err)
		got := f.Rcv.Items(sitetest.Tenant)
		for _, b := range bad[:min(len(bad), 5)] {
			code := strings.Fields(b)[0]
			st, _, _ := ob.ItemState(context.Background(), code)
			msgs, _ := ob.ItemMessages(context.Background(), code, 0)
			f.t.Logf("%s: receiver v%d via %s; outbox state %+v", code, got[code].Version, got[code].DeliveryID, st)
			for _, m := range msgs {
				f.t.Logf("   msg %d %s %s attempts=%d status=%d items=%v", m.ID, m.DeliveryID, m.State, m.Attempts, m.LastStatus, m.Items)
			}
			f.t.Logf("   the sync log of %s:\n%s", code, grepLines(f.Log(), "item="+code+" ", 10))
		}
		ob.Close()
		f.t.Logf("the detector's overlap re-reads:\n%s", grepLines(f.Log(), "overlap window", 20))
	}
	if len(bad) > 0 {
		f.t.Errorf("the receiver did not come to equal the database within %s of the fault clearing: %d items differ, e.g. %v (receiver stats %+v)",
			f.recovery(), len(bad), bad[:min(len(bad), 5)], after)
	}
	return figures{
		itemsChanged: changed,
		attempts:     f.attempts() - attemptsBefore,
		requests:     after.Requests - before.Requests,
		duplicates:   after.Duplicates - before.Duplicates,
		restated:     after.Restated - before.Restated,
		stale:        after.Stale - before.Stale,
		older:        f.order.older() - olderBefore,
		lost:         len(bad),
		recovery:     recovery,
	}
}

// obStats opens the outbox as a second reader, like `erpsync status`.
func (f *faultRun) obStats() outbox.Stats {
	f.t.Helper()
	ob, err := outbox.Open(context.Background(), f.outboxPath)
	must(f.t, err)
	defer ob.Close()
	st, err := ob.Stats(context.Background())
	must(f.t, err)
	return st
}

// drained waits until the outbox has nothing pending, and returns its stats.
func (f *faultRun) drained() outbox.Stats {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := f.obStats()
		if st.Pending == 0 {
			return st
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("outbox not drained: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until the sync log contains s.
func (f *faultRun) waitLog(s string, within time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(f.Log(), s) {
		if time.Now().After(deadline) {
			f.t.Fatalf("no %q in the sync log within %s", s, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// orderCheck sees every item state the receiver accepts, in the order it
// accepts them (receiver.Options.Out, one line per state), and counts the
// states older than one accepted before for the same item. The receiver
// itself ignores a state whose version is below the one it holds (Stats.Stale);
// what it cannot see is an older content under a higher version, as a writer
// that read the database before another and queued after it would send. The
// test's changes only move an item forward: every state the database held
// has a later `modified` than the states before it, and an item the test
// deleted never comes back. So a state is older when its `modified` is
// earlier than that of a state accepted before, or when it is an upsert of an
// item whose delete was accepted before. The content of each state is read
// from the request body (receiver.Options.Fault sees every body before it is
// verified).
type orderCheck struct {
	mu      sync.Mutex
	bodies  map[string][]byte    // request body by delivery id, until accepted
	newest  map[string]itemState // the newest state accepted, by item code
	count   int
	samples []string
}

// itemState is what orderCheck keeps of an accepted item state.
type itemState struct {
	version  int64
	modified time.Time
	deleted  bool
	delivery string
}

func newOrderCheck() *orderCheck {
	return &orderCheck{bodies: map[string][]byte{}, newest: map[string]itemState{}}
}

// body keeps a request's body until the receiver accepts it.
func (o *orderCheck) body(deliveryID string, body []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bodies[deliveryID] = bytes.Clone(body)
}

// Write takes the receiver's lines for one accepted delivery:
//
//	accepted tenant=… delivery=D op=upsert item=ITEM-1 version=7 name="Lamp"
func (o *orderCheck) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	entries := map[string]map[string]wireEntry{} // delivery id -> item code -> entry
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		line, _, _ = strings.Cut(line, " name=") // the only field that may hold spaces, always last
		kv := map[string]string{}
		for _, field := range strings.Fields(line) {
			if k, v, ok := strings.Cut(field, "="); ok {
				kv[k] = strings.Trim(v, `"`)
			}
		}
		d, code := kv["delivery"], kv["item"]
		if entries[d] == nil {
			var body struct {
				Items []wireEntry `json:"items"`
			}
			if err := json.Unmarshal(o.bodies[d], &body); err != nil {
				o.flag(fmt.Sprintf("%s: no readable body for accepted delivery %s: %v", code, d, err))
				continue
			}
			entries[d] = map[string]wireEntry{}
			for _, e := range body.Items {
				entries[d][e.Code] = e
			}
		}
		e, ok := entries[d][code]
		if !ok || kv["version"] != fmt.Sprint(e.Version) || kv["op"] != e.Op {
			o.flag(fmt.Sprintf("%s: the receiver accepted %q, which the body of delivery %s does not hold", code, line, d))
			continue
		}
		st := itemState{version: e.Version, deleted: e.Op == "delete", delivery: d}
		if !st.deleted {
			t, err := time.Parse(time.RFC3339Nano, e.Modified)
			if err != nil {
				o.flag(fmt.Sprintf("%s v%d: modified %q: %v", code, e.Version, e.Modified, err))
				continue
			}
			st.modified = t
		}
		prev, seen := o.newest[code]
		switch {
		case seen && prev.deleted && !st.deleted:
			o.flag(fmt.Sprintf("%s: upsert v%d (delivery %s, modified %s) accepted after its delete v%d (delivery %s)",
				code, st.version, d, e.Modified, prev.version, prev.delivery))
		case seen && !prev.deleted && !st.deleted && st.modified.Before(prev.modified):
			o.flag(fmt.Sprintf("%s: v%d (delivery %s) modified %s accepted after v%d (delivery %s) modified %s",
				code, st.version, d, st.modified.Format(time.RFC3339Nano), prev.version, prev.delivery, prev.modified.Format(time.RFC3339Nano)))
		default:
			o.newest[code] = st
		}
	}
	for d := range entries {
		delete(o.bodies, d)
	}
	return len(p), nil
}

// wireEntry is what orderCheck reads of an item entry of a request body.
type wireEntry struct {
	Code     string `json:"item_code"`
	Op       string `json:"op"`
	Version  int64  `json:"version"`
	Modified string `json:"modified"`
}

// flag counts an older state and keeps the first few descriptions. Caller
// holds o.mu.
func (o *orderCheck) flag(what string) {
	o.count++
	if len(o.samples) < 5 {
		o.samples = append(o.samples, what)
	}
}

// older returns how many states were flagged so far.
func (o *orderCheck) older() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count
}

// examples returns the first states flagged.
func (o *orderCheck) examples() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.samples)
}

// output records what a command of the case printed, for secretsFound.
func (f *faultRun) output(name, text string) {
	f.outputs = append(f.outputs, namedOutput{name, text})
}

// secretsFound searches every output of the case for the secrets erpsync
// holds: the tenant secret as written in its file, the key it decodes to
// when that is printable text, and the read-only database user's password
// in erp.dsn (sitetest's). The outputs are the sync log file, the agent's
// stderr when it ran as a process, and what the commands of the case
// printed (output). Each secret found in an output counts once; the test
// log says where, never what.
func (f *faultRun) secretsFound() int {
	f.t.Helper()
	secrets := []namedOutput{{"the tenant secret", f.Secret}, {"the database password", "ro-pass-Secret9"}}
	key, err := signer.DecodeSecret(f.Secret)
	must(f.t, err)
	if text := string(key); len(text) >= 8 && utf8.ValidString(text) && !strings.ContainsFunc(text, func(r rune) bool { return !unicode.IsPrint(r) }) {
		secrets = append(secrets, namedOutput{"the tenant key", text})
	}
	outs := append([]namedOutput{{"the sync log " + f.LogPath, f.Log()}}, f.outputs...)
	if f.binStderr != nil {
		outs = append(outs, namedOutput{"the agent's stderr", f.binStderr.String()})
	}
	found := secretsIn(secrets, outs)
	for _, where := range found {
		f.t.Log(where)
	}
	return len(found)
}

// secretsIn returns, for each secret found in an output, where: "<output>
// reveals <secret's name>".
func secretsIn(secrets, outs []namedOutput) []string {
	var found []string
	for _, out := range outs {
		for _, secret := range secrets {
			if secret.text != "" && strings.Contains(out.text, secret.text) {
				found = append(found, out.name+" reveals "+secret.name)
			}
		}
	}
	return found
}
