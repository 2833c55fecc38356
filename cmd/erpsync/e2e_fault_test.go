package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// The fault suite. Each case runs the agent against a real MariaDB and a
// loopback receiver that misbehaves on cue, changes a few thousand items
// while the fault is on, clears it, and waits until the receiver's final
// state of every item equals the database: nothing missing, repeats only
// with the same delivery id (the receiver counts a repeated delivery id as a
// duplicate, and the same item state accepted under two delivery ids as
// restated, which must not happen), no older state after a newer one. Each
// case logs one line of figures:
//
//	FAULT <case> items_changed=… attempts=… receiver_requests=… duplicates=… restated=0 stale=0 lost=0 recovery=…
//
// (go test -v -run Fault ./cmd/erpsync/ | grep 'FAULT ' prints the table.)

// TestFaultReceiver: the receiver answers 503, 429 with Retry-After, drops
// connections, hangs past the timeout, is down for longer than its replay
// window, refuses a wrong secret until a settings reload fixes it, and
// refuses one poison item among good ones.
func TestFaultReceiver(t *testing.T) {
	tests := []struct {
		name        string
		window      time.Duration
		poison      string
		beforeStart func(f *faultRun)
		inject      func(f *faultRun)
		clear       func(f *faultRun)
		coalesces   bool // nothing may have reached the receiver: the backlog holds one state per item
		check       func(t *testing.T, f *faultRun)
	}{
		{
			name:   "503",
			inject: func(f *faultRun) { f.set(fault503) },
			clear:  func(f *faultRun) { f.set(faultNone) }, coalesces: true,
		},
		{
			name:   "429 Retry-After 2",
			inject: func(f *faultRun) { f.set(fault429) },
			clear:  func(f *faultRun) { f.set(faultNone) }, coalesces: true,
			check: func(t *testing.T, f *faultRun) {
				if !strings.Contains(f.log(), "all_delivery_held_for=") {
					t.Errorf("no delivery held for the Retry-After:\n%s", grepLines(f.log(), "429", 8))
				}
			},
		},
		{
			name:   "connections dropped",
			inject: func(f *faultRun) { f.set(faultDrop) },
			clear:  func(f *faultRun) { f.set(faultNone) },
		},
		{
			name:   "hangs past the timeout",
			inject: func(f *faultRun) { f.set(faultHang) },
			clear:  func(f *faultRun) { f.set(faultNone) },
		},
		{
			name:      "down 5s, replay window 2s",
			window:    2 * time.Second,
			inject:    func(f *faultRun) { f.down() },
			clear:     func(f *faultRun) { f.up() },
			coalesces: true,
			check: func(t *testing.T, f *faultRun) {
				if n := f.rcv.Stats().Rejected["expired"]; n != 0 {
					t.Errorf("%d requests arrived with an expired timestamp: every attempt must be signed afresh", n)
				}
			},
		},
		{
			name: "wrong secret fixed by reload",
			beforeStart: func(f *faultRun) {
				wrong, err := signer.NewSecret()
				must(f.t, err)
				must(f.t, os.WriteFile(filepath.Join(f.dir, "secret"), []byte(wrong+"\n"), 0o600))
			},
			inject: func(f *faultRun) {},
			clear: func(f *faultRun) {
				must(f.t, os.WriteFile(filepath.Join(f.dir, "secret"), []byte(f.secret+"\n"), 0o600))
				must(f.t, f.daemon.Reload())
			},
			coalesces: true,
			check: func(t *testing.T, f *faultRun) {
				if n := f.rcv.Stats().Rejected["signature"]; n == 0 {
					t.Error("the receiver never refused the wrong secret")
				}
				if !strings.Contains(f.log(), "HMAC rejected (401): check the tenant secret and the clock") {
					t.Error("no HMAC rejected (401) line in the sync log")
				}
				if st := f.obStats(); st.Dead != 0 {
					t.Errorf("%d messages dead-lettered for an auth failure", st.Dead)
				}
			},
		},
		{
			name:   "poison item 422",
			poison: "ITEM-00777",
			inject: func(f *faultRun) {}, clear: func(f *faultRun) {},
			check: func(t *testing.T, f *faultRun) {
				ob, err := outbox.Open(context.Background(), f.outboxPath)
				must(t, err)
				defer ob.Close()
				dead, err := ob.List(context.Background(), outbox.Dead, 0)
				must(t, err)
				// The bulk change writes ITEM-00777 more than once (created,
				// then changed in a chunk). A state refused before the next
				// one was queued is dead-lettered on its own; a state still
				// waiting is replaced. So at least one dead letter, each
				// holding nothing but the poison item.
				if len(dead) == 0 {
					t.Error("no dead letter, want the poison item's")
				}
				for _, m := range dead {
					if len(m.Items) != 1 || m.Items[0].Code != "ITEM-00777" || m.LastStatus != 422 || !strings.Contains(m.LastError, "injected fault") {
						t.Errorf("dead letter %+v, want a message holding only ITEM-00777, status 422 and the response kept", m)
					}
				}
				if _, ok := f.rcv.Items(e2eTenant)["ITEM-00777"]; ok {
					t.Error("the poison item reached the receiver")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultRun(t, faultOptions{window: tc.window, poison: tc.poison})
			if tc.beforeStart != nil {
				tc.beforeStart(f)
			}
			f.start()
			tc.inject(f)
			injected := time.Now()
			var entries, items int
			var queuedIn time.Duration
			fig := f.measure(f.bulkChange, func(want expected) {
				// The fault stays on until the agent has queued every
				// change, and at least faultMinDuration, so that the
				// outbox's schedule (not only the client's short burst)
				// meets it; the recovery then measures delivery.
				queuedIn = f.waitQueued(want)
				time.Sleep(time.Until(injected.Add(faultMinDuration)))
				entries, items = f.backlog(f.outboxPath)
			}, func() { tc.clear(f) })
			fig.note = fmt.Sprintf("backlog_at_clear=%d_states/%d_items detected_within=%s", entries, items, queuedIn.Round(100*time.Millisecond))
			f.report(tc.name, fig)
			// A newer state replaces a waiting one, except in the messages
			// claimed for delivery when it was queued (a few batches); a
			// deleted item's delete may then be a third state.
			if tc.coalesces && entries > items+4*faultBatchSize+faultDeleted {
				t.Errorf("the backlog holds %d item states for %d items: a newer state must replace a waiting one", entries, items)
			}
			st := f.drained()
			if tc.poison == "" {
				if st.Dead != 0 {
					t.Errorf("%d messages dead-lettered", st.Dead)
				}
				f.assertMatchesDatabase() // the harness's own comparison, as every e2e test ends
			}
			if tc.check != nil {
				tc.check(t, f)
			}
			for reason, n := range f.rcv.Stats().Rejected {
				if reason != "fault" && !(reason == "signature" && tc.name == "wrong secret fixed by reload") {
					t.Errorf("the receiver refused %d requests as %s", n, reason)
				}
			}
			f.stop()
		})
	}
}

// TestFaultSIGKILL kills `erpsync run` with SIGKILL five times at random
// moments during the initial sync of faultItems items and a bulk change of
// all of them, restarting it each time.
func TestFaultSIGKILL(t *testing.T) {
	f := newFaultRun(t, faultOptions{items: faultItems})
	codes := f.codes()
	f.startBinary()
	var kills int
	fig := f.measure(func() int {
		errs := make(chan error, 1)
		go func() {
			var err error
			for round := 1; round <= 2 && err == nil; round++ {
				err = f.bulkUpdateErr(round, codes, 200, 50*time.Millisecond)
			}
			errs <- err
		}()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
		for ; kills < 5; kills++ {
			time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(600*time.Millisecond))))
			f.kill9()
			f.startBinary()
		}
		must(t, <-errs)
		return len(codes)
	}, nil, func() {})
	fig.note = fmt.Sprintf("kills=%d", kills)
	f.report("SIGKILL x5", fig)
	f.drained()
	f.assertMatchesDatabase()
	f.stopBinary()
	if st := f.obStats(); st.Dead != 0 {
		t.Errorf("%d messages dead-lettered", st.Dead)
	}
	if c := strings.Count(f.log(), "initial sync done"); c != 1 {
		t.Errorf("the initial sync finished %d times, want once", c)
	}
}

// TestFaultSIGTERMWithRequestsHanging: SIGTERM stops `erpsync run` within a
// bound (exit 0) while its requests hang at the receiver; what they carried
// stays pending and is delivered after a restart.
func TestFaultSIGTERMWithRequestsHanging(t *testing.T) {
	f := newFaultRun(t, faultOptions{items: faultItems / 4})
	f.set(faultStall)
	f.startBinary()
	var took time.Duration
	fig := f.measure(func() int {
		deadline := time.Now().Add(60 * time.Second)
		for f.rcv.Stats().Requests < 4 {
			if time.Now().After(deadline) {
				t.Fatal("no requests reached the receiver within 60s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		start := time.Now()
		f.stopBinary() // SIGTERM; fails the test unless it exits 0 within 20s
		took = time.Since(start)
		return faultItems / 4
	}, nil, func() {
		f.set(faultNone)
		f.startBinary()
	})
	fig.note = fmt.Sprintf("shutdown_took=%s", took.Round(10*time.Millisecond))
	f.report("SIGTERM, requests hanging", fig)
	// The dispatcher gives requests in flight 5s, then abandons them.
	if took > 8*time.Second {
		t.Errorf("erpsync run took %s to stop after SIGTERM with requests hanging, want at most the 5s grace and a little", took)
	}
	f.drained()
	f.assertMatchesDatabase()
	f.stopBinary()
}

// TestFaultRetryAfterCappedAndBackoff: the outbox's schedule is exponential
// backoff with full jitter, capped; a Retry-After is honoured but capped too,
// and holds back all delivery, not just the message that met it.
func TestFaultRetryAfterCappedAndBackoff(t *testing.T) {
	const limit = 10 * time.Minute
	for n := 1; n <= 40; n++ {
		ceil := min(limit, time.Second<<min(n, 30))
		var low int
		for i := 0; i < 200; i++ {
			d := backoff(n, limit)
			if d < 100*time.Millisecond || d > ceil {
				t.Fatalf("backoff(%d) = %s, want within [100ms, %s]", n, d, ceil)
			}
			if d < ceil/2 {
				low++
			}
		}
		if low == 0 {
			t.Errorf("backoff(%d): 200 draws, none below half the ceiling: not full jitter", n)
		}
	}

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
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := &queue{ob: ob, tenant: e2eTenant, batchSize: 1, maxBodyBytes: 1 << 20, logger: logger, now: time.Now}
	_, err = q.write(ctx, detector.Batch{Items: []detector.Item{fieldsItem("A", map[string]any{"item_code": "A"}), fieldsItem("B", map[string]any{"item_code": "B"})}})
	must(t, err)
	key, _ := signer.DecodeSecret("ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM=")
	cl, err := client.New(client.Config{URL: srv.URL, TenantID: e2eTenant, Key: key, Retries: -1, Timeout: 2 * time.Second})
	must(t, err)
	const maxWait = 3 * time.Second
	d := newDispatcher(ob, cl, logger, e2eTenant, 1, maxWait)
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

// TestFaultMariaDBRestart restarts the database server in the middle of a
// bulk change: the agent reconnects with backoff, logs the outage once, and
// leaves no gap.
func TestFaultMariaDBRestart(t *testing.T) {
	if os.Getenv(mariadb.EnvTestDSN) != "" {
		t.Skipf("the test database is the server $%s names, which this test must not restart", mariadb.EnvTestDSN)
	}
	f := newFaultRun(t, faultOptions{})
	f.start()
	var downFor time.Duration
	fig := f.measure(func() int {
		ctx := context.Background()
		f.retryDB("seed", func() error { return f.site.Seed(ctx, faultItems) })
		codes := f.codes()
		f.bulkUpdate(1, codes, 200, 20*time.Millisecond)
		start := time.Now()
		if err := mariadb.RestartShared(ctx, 3*time.Second); err != nil {
			t.Fatalf("restart MariaDB: %v", err)
		}
		downFor = time.Since(start)
		f.bulkUpdate(2, codes, 200, 20*time.Millisecond)
		return len(codes)
	}, nil, func() {})
	f.drained()
	f.assertMatchesDatabase()
	f.waitLog("detection recovered", 30*time.Second) // at the end of the first whole poll after the outage
	f.stop()
	log := f.log()
	outages := strings.Count(log, "detection failed; retrying with backoff")
	fig.note = fmt.Sprintf("db_unreachable_for=%s outage_logged=%d", downFor.Round(10*time.Millisecond), outages)
	f.report("MariaDB restart", fig)
	if outages != 1 {
		t.Errorf("the database outage was logged %d times, want once", outages)
	}
	if n := strings.Count(log, "level=ERROR"); n > 2 {
		t.Errorf("%d ERROR lines for one database restart:\n%s", n, grepLines(log, "level=ERROR", 10))
	}
}

// TestFaultOutboxDiskFull puts the outbox on a small tmpfs and fills it
// during a bulk change: outbox writes fail, the detector's position does not
// move, the error is logged, and once space returns nothing is missing.
func TestFaultOutboxDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tmpfs")
	must(t, os.Mkdir(dir, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("this case needs to mount a small tmpfs for the outbox (root with CAP_SYS_ADMIN): mount: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	f := newFaultRun(t, faultOptions{outboxDir: dir})
	f.start()
	filler := filepath.Join(dir, "filler")
	var full string
	fig := f.measure(func() int {
		// The disk fills while the agent delivers the first part of the
		// change: outcomes it cannot record are sent again later.
		f.retryDB("seed", func() error { return f.site.Seed(context.Background(), faultItems) })
		time.Sleep(500 * time.Millisecond)
		fillFilesystem(t, filler)
		// Writes fail once they need space the outbox's files do not
		// have yet: change every item again until they do.
		codes := f.codes()
		for round := 1; !strings.Contains(f.log(), "database or disk is full"); round++ {
			if round > 10 {
				t.Fatalf("no \"database or disk is full\" in the sync log after %d rounds of changes to %d items", round-1, len(codes))
			}
			f.bulkUpdate(round, codes, 200, 20*time.Millisecond)
			time.Sleep(time.Second)
		}
		f.deleteSome()
		n := len(codes)
		time.Sleep(time.Second)
		var st syscall.Statfs_t
		must(t, syscall.Statfs(dir, &st))
		full = fmt.Sprintf("free_bytes_while_full=%d", st.Bavail*uint64(st.Bsize))
		return n
	}, nil, func() { must(t, os.Remove(filler)) })
	f.drained()
	f.assertMatchesDatabase()
	f.stop()
	log := f.log()
	errorLines := strings.Count(log, "level=ERROR")
	fig.note = fmt.Sprintf("%s error_lines=%d", full, errorLines)
	f.report("outbox disk full", fig)
	// Once per outage and component: the detector's queue, and delivery.
	if errorLines < 1 || errorLines > 2 {
		t.Errorf("%d ERROR lines for one disk-full outage, want 1 or 2:\n%s", errorLines, grepLines(log, "level=ERROR", 20))
	}
	if st := f.obStats(); st.Dead != 0 {
		t.Errorf("%d messages dead-lettered", st.Dead)
	}
}

// fillFilesystem writes path until the filesystem has no space left.
func fillFilesystem(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Create(path)
	must(t, err)
	defer fh.Close()
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		buf := make([]byte, size)
		for {
			if _, err := fh.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", path, err)
				}
				break
			}
		}
	}
}

// TestFaultReconcile: a rename (ERPNext leaves `modified` alone) and a raw
// SQL price change of every item are invisible to polling; a reconciliation
// sweep sends them: the renamed item is deleted under its old name and sent
// under the new one.
func TestFaultReconcile(t *testing.T) {
	ctx := context.Background()
	f := newFaultRun(t, faultOptions{items: faultItems})
	f.start()
	if _, bad := f.waitEqual(f.dbState()); len(bad) > 0 {
		t.Fatalf("initial sync incomplete: %v", bad[:min(5, len(bad))])
	}
	f.drained()
	f.assertMatchesDatabase()
	fig := f.measure(func() int {
		must(t, f.site.RenameItem(ctx, "ITEM-00042", "ITEM-00042-RENAMED"))
		f.deleted["ITEM-00042"] = true
		res, err := f.db.Exec("UPDATE `tabItem Price` SET `price_list_rate` = `price_list_rate` + 1 WHERE `price_list` = ?", erpnext.PriceListSelling)
		must(t, err)
		n, _ := res.RowsAffected()
		time.Sleep(500 * time.Millisecond) // polls go on and see nothing
		if e, ok := f.rcv.Items(e2eTenant)["ITEM-00042"]; !ok || e.Op != "upsert" {
			t.Errorf("polling already acted on the rename: %+v", e)
		}
		return int(n) + 1
	}, nil, func() { f.daemon.Reconcile() })
	f.report("reconcile rename + raw SQL", fig)
	if e := f.rcv.Items(e2eTenant)["ITEM-00042"]; e.Op != "delete" {
		t.Errorf("the old name of the renamed item is %q at the receiver, want delete", e.Op)
	}
	f.drained()
	f.assertMatchesDatabase()
	f.stop()
}

// TestFaultQueueCoalescesWaitingStates: a newer state of an item takes the
// place of its older state while that waits in a message no attempt has
// reached the receiver with, under a new delivery id, keeping the message's
// place; a message in flight or possibly received keeps its body.
func TestFaultQueueCoalescesWaitingStates(t *testing.T) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	q := &queue{ob: ob, tenant: e2eTenant, batchSize: 3, maxBodyBytes: 1 << 20,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	item := func(code, name string) detector.Item {
		return fieldsItem(code, map[string]any{"item_code": code, "item_name": name})
	}
	write := func(items ...detector.Item) {
		t.Helper()
		if _, err := q.write(ctx, detector.Batch{Items: items}); err != nil {
			t.Fatal(err)
		}
	}
	// pending lists the pending messages, oldest first, as "id:A=name,B=name".
	pending := func() []string {
		t.Helper()
		msgs, err := ob.List(ctx, outbox.Pending, 0)
		must(t, err)
		var out []string
		for i := len(msgs) - 1; i >= 0; i-- {
			m, err := ob.Get(ctx, msgs[i].ID)
			must(t, err)
			var body struct {
				DeliveryID string           `json:"delivery_id"`
				Items      []map[string]any `json:"items"`
			}
			dec := json.NewDecoder(bytes.NewReader(m.Body))
			dec.UseNumber()
			must(t, dec.Decode(&body))
			if body.DeliveryID != m.DeliveryID {
				t.Errorf("message %d: body delivery id %s, stored %s", m.ID, body.DeliveryID, m.DeliveryID)
			}
			var parts []string
			for j, it := range body.Items {
				if it["item_code"] != m.Items[j].Code || fmt.Sprint(it["version"]) != fmt.Sprint(m.Items[j].Version) {
					t.Errorf("message %d: body item %d is %v v%v, stored %+v", m.ID, j, it["item_code"], it["version"], m.Items[j])
				}
				parts = append(parts, fmt.Sprintf("%s=%s", it["item_code"], it["item_name"]))
			}
			out = append(out, fmt.Sprintf("%d:%s", m.ID, strings.Join(parts, ",")))
		}
		return out
	}
	expect := func(want ...string) {
		t.Helper()
		if got := pending(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("pending messages\n got %v\nwant %v", got, want)
		}
	}

	write(item("A", "a1"), item("B", "b1"), item("C", "c1"), item("D", "d1"))
	expect("1:A=a1,B=b1,C=c1", "2:D=d1")
	first, err := ob.Get(ctx, 1)
	must(t, err)

	// Message 1 is in flight: B's new state waits behind it in a new
	// message. Message 2 never went out: D's new state replaces d1 in place.
	claimed, err := ob.Claim(ctx, time.Now(), 1)
	must(t, err)
	if len(claimed) != 1 || claimed[0].ID != 1 {
		t.Fatalf("claimed %+v", claimed)
	}
	write(item("B", "b2"), item("D", "d2"), item("E", "e1"))
	expect("1:A=a1,B=b1,C=c1", "2:D=d2", "3:B=b2,E=e1")

	// Refused (503): message 1 never reached the receiver's state, so it
	// may be rewritten, under a new delivery id.
	must(t, ob.MarkRefused(ctx, 1, 503, "unavailable", time.Now()))
	ob.Release(1)
	write(item("A", "a2"))
	expect("1:A=a2,B=b1,C=c1", "2:D=d2", "3:B=b2,E=e1")
	m1, err := ob.Get(ctx, 1)
	must(t, err)
	if m1.DeliveryID == first.DeliveryID {
		t.Error("a rewritten message kept its delivery id: a delivery id must never name two contents")
	}

	// Timed out (possibly received): message 1 keeps its body to the end.
	claimed, err = ob.Claim(ctx, time.Now(), 1)
	must(t, err)
	must(t, ob.MarkRetry(ctx, claimed[0].ID, 0, "timeout", time.Now()))
	ob.Release(claimed[0].ID)
	write(item("A", "a3"), item("C", "c2"))
	expect("1:A=a2,B=b1,C=c1", "2:D=d2", "3:B=b2,E=e1", "4:A=a3,C=c2")

	// The newer state does not fit the waiting body: the item leaves it for
	// a new message, and a message left empty is dropped.
	q.maxBodyBytes = 400
	big := strings.Repeat("x", 300)
	write(item("E", big), item("D", "d3"))
	expect("1:A=a2,B=b1,C=c1", "2:D=d3", "3:B=b2", "4:A=a3,C=c2", "5:E="+big)
	write(item("B", big)) // alone in its message: any size goes
	expect("1:A=a2,B=b1,C=c1", "2:D=d3", "3:B="+big, "4:A=a3,C=c2", "5:E="+big)
	write(item("A", big), item("C", big))
	expect("1:A=a2,B=b1,C=c1", "2:D=d3", "3:B="+big, "5:E="+big, "6:A="+big, "7:C="+big)
}

// bulkUpdateErr is bulkUpdate for goroutines other than the test's.
func (f *faultRun) bulkUpdateErr(round int, codes []string, chunk int, gap time.Duration) error {
	for lo := 0; lo < len(codes); lo += chunk {
		part := codes[lo:min(lo+chunk, len(codes))]
		args := []any{fmt.Sprintf("<p>bulk change, round %d</p>", round), f.site.Format(time.Now())}
		for _, c := range part {
			args = append(args, c)
		}
		q := "UPDATE `tabItem` SET `description` = ?, `modified` = ? WHERE `name` IN (?" + strings.Repeat(",?", len(part)-1) + ")"
		if _, err := f.db.Exec(q, args...); err != nil {
			return err
		}
		time.Sleep(gap)
	}
	return nil
}

// grepLines returns up to n lines of s containing sub.
func grepLines(s, sub string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
