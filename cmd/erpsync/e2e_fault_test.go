package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// The fault suite. Each case runs the agent against a real MariaDB and a
// loopback receiver, makes a fault happen while a few thousand items change
// (the receiver misbehaving on cue; the database restarted or killed,
// e2e_fault_mariadb_test.go; the connection to it cut, slowed or throttled
// by toxiproxy, e2e_fault_toxiproxy_test.go; the outbox's disk full; the
// agent or a resync killed with SIGKILL, e2e_fault_kill_test.go), clears it,
// and waits until the receiver's final state of every item equals the
// database: nothing missing, repeats only with the same delivery id (the
// receiver counts a repeated delivery id as a duplicate, and the same item
// state accepted under two delivery ids as restated, which must not happen),
// no older state after a newer one (orderCheck), no secret in any output
// (secretsFound). Each case logs one line of figures:
//
//	FAULT <case> items_changed=… attempts=… receiver_requests=… duplicates=… restated=0 older_after_newer=0 lost=0 secrets=0 recovery=…
//
// (go test -v -run Fault ./cmd/erpsync/ | grep 'FAULT ' prints the table.)
// The cases that stop the database server every test shares call no
// t.Parallel, so that nothing runs beside them.

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

// TestFaultOutboxDiskFull puts the outbox on a small tmpfs and fills it
// during a bulk change: erpsync stops taking changes from the database (the
// detector's position in the outbox does not move while the disk is full,
// however much changes), keeps what it has (no message goes), says why (an
// ERROR line naming the disk being full and the outbox's path), and once
// space returns resumes: nothing is missing.
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
	const (
		failed      = `msg="detection failed; retrying with backoff until it recovers"`
		stillFailed = `msg="detection still failing"`
		diskFull    = "database or disk is full"
		noSpace     = "no space left on device"
	)
	var full string
	fig := f.measure(func() int {
		// The disk fills while the agent delivers the first part of the
		// change: outcomes it cannot record are sent again later.
		f.retryDB("seed", func() error { return f.Site.Seed(context.Background(), faultItems) })
		time.Sleep(500 * time.Millisecond)
		fillFilesystem(t, filler)
		// Writes fail once they need space the outbox's files do not
		// have yet: change every item again until the detector's do.
		codes := f.codes()
		round := 1
		// SQLite says "database or disk is full"; the version floor's
		// fsynced file, which may need the last block first, "no space
		// left on device".
		for ; !strings.Contains(grepLines(f.Log(), failed, 1), diskFull) && !strings.Contains(grepLines(f.Log(), failed, 1), noSpace); round++ {
			if round > 10 {
				t.Fatalf("no %q for the detection in the sync log after %d rounds of changes to %d items:\n%s",
					diskFull, round-1, len(codes), grepLines(f.Log(), "level=ERROR", 5))
			}
			f.bulkUpdate(round, codes, 200, 20*time.Millisecond)
			time.Sleep(time.Second)
		}
		// The disk is full: change everything once more, and let the
		// agent try to take the changes twice more. Its position and
		// its messages stay as they were.
		cursors, messages := f.outboxPosition()
		tries := strings.Count(f.Log(), stillFailed)
		f.bulkUpdate(round, codes, 200, 20*time.Millisecond)
		f.deleteSome()
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(f.Log(), stillFailed) < tries+2 {
			if time.Now().After(deadline) {
				t.Fatalf("the agent did not try to queue the changes again within 30s while the disk was full:\n%s", grepLines(f.Log(), "detection", 10))
			}
			time.Sleep(50 * time.Millisecond)
		}
		cursorsLater, messagesLater := f.outboxPosition()
		if !maps.Equal(cursors, cursorsLater) {
			t.Errorf("the detector's position moved while the outbox's disk was full: %v, then %v", cursors, cursorsLater)
		}
		if messagesLater < messages {
			t.Errorf("the outbox held %d messages when its disk was full, then %d", messages, messagesLater)
		}
		var st syscall.Statfs_t
		must(t, syscall.Statfs(dir, &st))
		full = fmt.Sprintf("free_bytes_while_full=%d cursors_while_full=%d messages_while_full=%d/%d",
			st.Bavail*uint64(st.Bsize), len(cursors), messages, messagesLater)
		return len(codes)
	}, nil, func() { must(t, os.Remove(filler)) })
	f.drained()
	f.AssertMatchesDatabase()
	f.Stop()
	log := f.Log()
	errorLines := strings.Count(log, "level=ERROR")
	fig.note = fmt.Sprintf("%s error_lines=%d", full, errorLines)
	f.report("outbox disk full", fig)
	// Says why: the disk being full, and which file.
	if line := grepLines(log, failed, 1); !(strings.Contains(line, diskFull) || strings.Contains(line, noSpace)) || !strings.Contains(line, f.outboxPath) {
		t.Errorf("the detection's ERROR line does not say that the disk of the outbox %s is full:\n%s", f.outboxPath, line)
	}
	// Once per outage and component: the detector's queue, and delivery.
	if errorLines < 1 || errorLines > 2 {
		t.Errorf("%d ERROR lines for one disk-full outage, want 1 or 2:\n%s", errorLines, grepLines(log, "level=ERROR", 20))
	}
	if !strings.Contains(log, `msg="detection recovered"`) {
		t.Error("no \"detection recovered\" line once space returned")
	}
	if st := f.obStats(); st.Dead != 0 {
		t.Errorf("%d messages dead-lettered", st.Dead)
	}
}

// outboxPosition reads, from the outbox file as a second reader (read-only,
// which works on a full disk), the detector's cursors (source: modified and
// name) and how many messages the outbox holds.
func (f *faultRun) outboxPosition() (cursors map[string]string, messages int) {
	f.t.Helper()
	db, err := sql.Open("sqlite", "file:"+f.outboxPath+"?mode=ro&_pragma=busy_timeout(10000)")
	must(f.t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT source, modified, name FROM cursors`)
	must(f.t, err)
	defer rows.Close()
	cursors = map[string]string{}
	for rows.Next() {
		var source, modified, name string
		must(f.t, rows.Scan(&source, &modified, &name))
		cursors[source] = modified + " " + name
	}
	must(f.t, rows.Err())
	must(f.t, db.QueryRow(`SELECT count(*) FROM messages`).Scan(&messages))
	return cursors, messages
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
		must(t, f.Site.RawRenameItem(ctx, "ITEM-00042", "ITEM-00042-RENAMED"))
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
