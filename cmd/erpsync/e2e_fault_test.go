package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
	"github.com/orderweave/erpsync/internal/sitetest"
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
	t.Parallel() // mostly waits out its faults; see the Makefile's -parallel
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
				if !strings.Contains(f.Log(), "all_delivery_held_for=") {
					t.Errorf("no delivery held for the Retry-After:\n%s", grepLines(f.Log(), "429", 8))
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
				if n := f.Rcv.Stats().Rejected["expired"]; n != 0 {
					t.Errorf("%d requests arrived with an expired timestamp: every attempt must be signed afresh", n)
				}
			},
		},
		{
			name: "wrong secret fixed by reload",
			beforeStart: func(f *faultRun) {
				wrong, err := signer.NewSecret()
				must(f.t, err)
				must(f.t, os.WriteFile(filepath.Join(f.Dir, "secret"), []byte(wrong+"\n"), 0o600))
			},
			inject: func(f *faultRun) {},
			clear: func(f *faultRun) {
				must(f.t, os.WriteFile(filepath.Join(f.Dir, "secret"), []byte(f.Secret+"\n"), 0o600))
				must(f.t, f.Reload())
			},
			coalesces: true,
			check: func(t *testing.T, f *faultRun) {
				if n := f.Rcv.Stats().Rejected["signature"]; n == 0 {
					t.Error("the receiver never refused the wrong secret")
				}
				if !strings.Contains(f.Log(), "HMAC rejected (401): check the tenant secret and the clock") {
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
				if _, ok := f.Rcv.Items(sitetest.Tenant)["ITEM-00777"]; ok {
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
			f.Start()
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
				f.AssertMatchesDatabase() // the harness's own comparison, as every e2e test ends
			}
			if tc.check != nil {
				tc.check(t, f)
			}
			for reason, n := range f.Rcv.Stats().Rejected {
				if reason != "fault" && !(reason == "signature" && tc.name == "wrong secret fixed by reload") {
					t.Errorf("the receiver refused %d requests as %s", n, reason)
				}
			}
			f.Stop()
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
	f.AssertMatchesDatabase()
	f.stopBinary()
	if st := f.obStats(); st.Dead != 0 {
		t.Errorf("%d messages dead-lettered", st.Dead)
	}
	if c := strings.Count(f.Log(), "initial sync done"); c != 1 {
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
		for f.Rcv.Stats().Requests < 4 {
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
	f.AssertMatchesDatabase()
	f.stopBinary()
}

// TestFaultMariaDBRestart restarts the database server in the middle of a
// bulk change: the agent reconnects with backoff, logs the outage once, and
// leaves no gap.
func TestFaultMariaDBRestart(t *testing.T) {
	if os.Getenv(mariadbtest.EnvTestDSN) != "" {
		t.Skipf("the test database is the server $%s names, which this test must not restart", mariadbtest.EnvTestDSN)
	}
	f := newFaultRun(t, faultOptions{})
	f.Start()
	var downFor time.Duration
	fig := f.measure(func() int {
		ctx := context.Background()
		f.retryDB("seed", func() error { return f.Site.Seed(ctx, faultItems) })
		codes := f.codes()
		f.bulkUpdate(1, codes, 200, 20*time.Millisecond)
		start := time.Now()
		if err := mariadbtest.RestartShared(ctx, 3*time.Second); err != nil {
			t.Fatalf("restart MariaDB: %v", err)
		}
		downFor = time.Since(start)
		f.bulkUpdate(2, codes, 200, 20*time.Millisecond)
		return len(codes)
	}, nil, func() {})
	f.drained()
	f.AssertMatchesDatabase()
	f.waitLog("detection recovered", 30*time.Second) // at the end of the first whole poll after the outage
	f.Stop()
	log := f.Log()
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
	f.Start()
	filler := filepath.Join(dir, "filler")
	var full string
	fig := f.measure(func() int {
		// The disk fills while the agent delivers the first part of the
		// change: outcomes it cannot record are sent again later.
		f.retryDB("seed", func() error { return f.Site.Seed(context.Background(), faultItems) })
		time.Sleep(500 * time.Millisecond)
		fillFilesystem(t, filler)
		// Writes fail once they need space the outbox's files do not
		// have yet: change every item again until they do.
		codes := f.codes()
		for round := 1; !strings.Contains(f.Log(), "database or disk is full"); round++ {
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
	f.AssertMatchesDatabase()
	f.Stop()
	log := f.Log()
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
	f.Start()
	if _, bad := f.waitEqual(f.dbState()); len(bad) > 0 {
		t.Fatalf("initial sync incomplete: %v", bad[:min(5, len(bad))])
	}
	f.drained()
	f.AssertMatchesDatabase()
	fig := f.measure(func() int {
		must(t, f.Site.RenameItem(ctx, "ITEM-00042", "ITEM-00042-RENAMED"))
		f.deleted["ITEM-00042"] = true
		res, err := f.DB.Exec("UPDATE `tabItem Price` SET `price_list_rate` = `price_list_rate` + 1 WHERE `price_list` = ?", erpnext.PriceListSelling)
		must(t, err)
		n, _ := res.RowsAffected()
		time.Sleep(500 * time.Millisecond) // polls go on and see nothing
		if e, ok := f.Rcv.Items(sitetest.Tenant)["ITEM-00042"]; !ok || e.Op != "upsert" {
			t.Errorf("polling already acted on the rename: %+v", e)
		}
		return int(n) + 1
	}, nil, func() { f.Pipeline.Reconcile() })
	f.report("reconcile rename + raw SQL", fig)
	if e := f.Rcv.Items(sitetest.Tenant)["ITEM-00042"]; e.Op != "delete" {
		t.Errorf("the old name of the renamed item is %q at the receiver, want delete", e.Op)
	}
	f.drained()
	f.AssertMatchesDatabase()
	f.Stop()
}

// bulkUpdateErr is bulkUpdate for goroutines other than the test's.
func (f *faultRun) bulkUpdateErr(round int, codes []string, chunk int, gap time.Duration) error {
	for lo := 0; lo < len(codes); lo += chunk {
		part := codes[lo:min(lo+chunk, len(codes))]
		args := []any{fmt.Sprintf("<p>bulk change, round %d</p>", round), f.Site.Format(time.Now())}
		for _, c := range part {
			args = append(args, c)
		}
		q := "UPDATE `tabItem` SET `description` = ?, `modified` = ? WHERE `name` IN (?" + strings.Repeat(",?", len(part)-1) + ")"
		if _, err := f.DB.Exec(q, args...); err != nil {
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
