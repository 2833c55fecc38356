package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
)

// TestStatusBinary runs `erpsync status` as a process while the daemon runs.
func TestStatusBinary(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	const n = 8
	tests := []struct {
		name   string
		reject string // item the receiver refuses with 422
		check  func(t *testing.T, st tenantStatus)
		text   []string
	}{
		{
			name: "everything delivered",
			check: func(t *testing.T, st tenantStatus) {
				if st.Pending != 0 || st.Dead != 0 || st.LastFailure != nil || st.OldestPending != nil {
					t.Errorf("pending %d dead %d failure %+v oldest %v", st.Pending, st.Dead, st.LastFailure, st.OldestPending)
				}
				if st.Rate.LastHour != n || st.Rate.LastMinute != n {
					t.Errorf("rate %+v, want %d in the last minute and hour", st.Rate, n)
				}
			},
			text: []string{"last failure    none on record"},
		},
		{
			name:   "a dead letter",
			reject: "ITEM-00004",
			check: func(t *testing.T, st tenantStatus) {
				f := st.LastFailure
				if st.Dead != 1 || f == nil || f.Status != 422 || f.State != "dead" || len(f.Items) != 1 || f.Items[0] != "ITEM-00004" {
					t.Fatalf("dead %d, last failure %+v", st.Dead, f)
				}
				if !strings.Contains(f.Reason, "422") {
					t.Errorf("reason %q does not say 422", f.Reason)
				}
			},
			text: []string{"HTTP 422", "items ITEM-00004", "erpsync outbox retry"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sitetest.New(t, sitetest.Options{Items: n, Fault: func(body []byte) (int, bool) {
				if tt.reject != "" && strings.Contains(string(body), `"item_code":"`+tt.reject+`"`) {
					return 422, true
				}
				return 0, false
			}})
			start := time.Now()
			e.Start()
			defer e.Stop()
			delivered := n
			if tt.reject != "" {
				delivered--
			}
			st := waitStatus(t, e, "every message delivered or dead", func(st tenantStatus) bool {
				return st.Delivered == int64(delivered) && st.Pending == 0 && st.Dead == int64(n-delivered) && st.InitialSync == "done"
			})
			if st.Tenant != sitetest.Tenant || st.Outbox != filepath.Join(e.Dir, "outbox.db") || st.IngestURL != e.URL {
				t.Errorf("header fields %+v", st)
			}
			if len(st.Cursors) != len(detector.Sources()) || st.Cursors[0].Source != detector.Sources()[0] {
				t.Errorf("cursors %+v", st.Cursors)
			}
			for _, at := range []*time.Time{st.LastDetection, st.LastSuccess} {
				if at == nil || at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
					t.Errorf("time %v out of range", at)
				}
			}
			tt.check(t, st)

			code, out, errOut := runBinary(t, "status", "--config", e.CfgPath)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range append([]string{"tenant          " + sitetest.Tenant, "initial sync    done", "SOURCE", "deleted_document", "delivery rate"}, tt.text...) {
				if !strings.Contains(out, w) {
					t.Errorf("status lacks %q:\n%s", w, out)
				}
			}
			assertNoSecrets(t, e, out, errOut)
		})
	}
}

// TestStatusPendingAge: a backlog shows its oldest age and, after failed
// attempts, the last failure of a pending message.
func TestStatusPendingAge(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	var down atomic.Bool
	down.Store(true)
	e := sitetest.New(t, sitetest.Options{Items: 3, Fault: func(body []byte) (int, bool) { return 503, down.Load() }})
	e.Start()
	defer e.Stop()
	st := waitStatus(t, e, "a failed attempt on record", func(st tenantStatus) bool {
		return st.Pending > 0 && st.LastFailure != nil
	})
	if st.LastFailure.Status != 503 || st.LastFailure.State != "pending" || st.OldestPendingAge == nil || *st.OldestPendingAge < 0 {
		t.Errorf("status %+v, failure %+v", st, st.LastFailure)
	}
	down.Store(false)
}

// TestOpsNoOutbox: commands that read the outbox say so when there is none,
// and do not create it.
func TestOpsNoOutbox(t *testing.T) {
	e := sitetest.New(t, sitetest.Options{})
	path := filepath.Join(e.Dir, "outbox.db")
	tests := [][]string{
		{"status"}, {"status", "--json"}, {"outbox", "list"}, {"outbox", "show", "1"}, {"outbox", "retry", "--all-dead"},
		{"resync", "--all"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := runBinary(t, append(args, "--config", e.CfgPath)...)
			want := "no outbox at " + path + ": has erpsync run yet? (outbox.path in " + e.CfgPath + ")"
			if code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("the command created the outbox: %v", err)
			}
		})
	}
}

// TestStatusInitialSyncInProgress reads an outbox whose initial sync stopped
// half way.
func TestStatusInitialSyncInProgress(t *testing.T) {
	e := sitetest.New(t, sitetest.Options{})
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(e.Dir, "outbox.db"))
	must(t, err)
	must(t, ob.Update(ctx, func(tx *outbox.Tx) error { return tx.SetMeta(ctx, "snapshot_after", "ITEM-00500") })) // what site.InitialSync reads
	ob.Close()
	code, out, errOut := runMain(t, "", "status", "--config", e.CfgPath)
	if code != 0 || !strings.Contains(out, "in progress (sent up to item ITEM-00500)") || !strings.Contains(out, "last detection  never") {
		t.Errorf("exit %d:\n%s%s", code, out, errOut)
	}
}
