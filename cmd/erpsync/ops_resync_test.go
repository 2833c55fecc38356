package main

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/site"
)

// versions returns the receiver's version of every item.
func versions(e *sitetest.Env) map[string]int64 {
	out := map[string]int64{}
	for code, entry := range e.Rcv.Items(sitetest.Tenant) {
		out[code] = entry.Version
	}
	return out
}

// waitNewer waits until every code in codes has a newer version than in
// before, and returns the versions then.
func waitNewer(t *testing.T, e *sitetest.Env, before map[string]int64, codes ...string) map[string]int64 {
	t.Helper()
	e.Wait(t, "new versions of "+strings.Join(codes, ","), func(items map[string]receiver.Entry) bool {
		for _, c := range codes {
			if items[c].Version <= before[c] {
				return false
			}
		}
		return true
	})
	return versions(e)
}

// TestResyncWhileRunning resends unchanged items through the running
// daemon: by code, by time, deleted ones, and all of them.
func TestResyncWhileRunning(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	const n = 12
	e := sitetest.New(t, sitetest.Options{Items: n})
	ctx := context.Background()
	e.Start()
	defer e.Stop()
	e.WaitCount(n)
	waitStatus(t, e, "the initial sync delivered", func(st tenantStatus) bool { return st.Delivered > 0 && st.Pending == 0 })

	// --item: unchanged content is sent again with a newer version; other
	// items are left alone.
	before := versions(e)
	code, out, errOut := runBinary(t, "resync", "--config", e.CfgPath, "--item", "ITEM-00003", "ITEM-00005", "--item", "ITEM-00003")
	if code != 0 || !strings.Contains(out, "queued 2 item state(s) of 2 item(s)") {
		t.Fatalf("resync --item: exit %d\n%s%s", code, out, errOut)
	}
	after := waitNewer(t, e, before, "ITEM-00003", "ITEM-00005")
	if after["ITEM-00004"] != before["ITEM-00004"] {
		t.Error("resync --item resent an item it was not asked for")
	}
	assertNoSecrets(t, e, out, errOut)

	// --since TIME: only items changed at or after TIME (given with an
	// offset, read in the site's zone).
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	must(t, e.Site.SetStock(ctx, "ITEM-00010", erpnext.Stock{Warehouse: erpnext.WarehouseStores, ActualQty: "77"}))
	before = waitNewer(t, e, after, "ITEM-00010")
	code, out, errOut = runBinary(t, "resync", "--config", e.CfgPath, "--since", since.Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(out, "queued 1 item state(s) of 1 item(s)") {
		t.Fatalf("resync --since: exit %d\n%s%s", code, out, errOut)
	}
	after = waitNewer(t, e, before, "ITEM-00010")
	if after["ITEM-00011"] != before["ITEM-00011"] {
		t.Error("resync --since resent an item changed before TIME")
	}

	// A deleted item's delete is sent again; an unknown code is skipped.
	must(t, e.Site.DeleteItem(ctx, "ITEM-00002"))
	e.Wait(t, "the delete", func(items map[string]receiver.Entry) bool { return items["ITEM-00002"].Op == "delete" })
	before = versions(e)
	code, out, _ = runBinary(t, "resync", "--config", e.CfgPath, "--item", "ITEM-00002,NO-SUCH-ITEM")
	if code != 0 || !strings.Contains(out, "queued 1 item state(s)") || !strings.Contains(out, "skipped 1 item(s)") {
		t.Fatalf("resync of a deleted and an unknown item: exit %d\n%s", code, out)
	}
	after = waitNewer(t, e, before, "ITEM-00002")
	if after["ITEM-00002"] <= before["ITEM-00002"] || e.Rcv.Items(sitetest.Tenant)["ITEM-00002"].Op != "delete" {
		t.Error("the delete was not sent again")
	}

	// --all: every item, in-process with the progress going to a buffer.
	before = versions(e)
	code, out, errOut = runMain(t, "", "resync", "--config", e.CfgPath, "--all")
	if code != 0 || !strings.Contains(out, "queued 11 item state(s) of 11 item(s)") {
		t.Fatalf("resync --all: exit %d\n%s%s", code, out, errOut)
	}
	var live []string
	for code := range maps.Keys(before) {
		if code != "ITEM-00002" {
			live = append(live, code)
		}
	}
	waitNewer(t, e, before, live...)
	e.AssertMatchesDatabase()
	e.AssertNoRejections()
}

// TestResyncKeepsDetectionPosition: resync moves neither a cursor nor the
// initial sync's position, and what it queued is delivered on the next start.
func TestResyncKeepsDetectionPosition(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	const n = 5
	e := sitetest.New(t, sitetest.Options{Items: n})
	ctx := context.Background()
	e.Start()
	e.WaitCount(n)
	waitStatus(t, e, "all delivered", func(st tenantStatus) bool { return st.Delivered == n && st.Pending == 0 })
	e.Stop()

	path := filepath.Join(e.Dir, "outbox.db")
	read := func() (map[string]outbox.Cursor, bool, string) {
		ob, err := outbox.Open(ctx, path)
		must(t, err)
		defer ob.Close()
		cur, err := ob.Cursors(ctx)
		must(t, err)
		done, after, err := site.InitialSync(ctx, ob)
		must(t, err)
		return cur, done, after
	}
	cur0, done0, after0 := read()
	code, out, errOut := runBinary(t, "resync", "--config", e.CfgPath, "--all")
	if code != 0 || !strings.Contains(out, "queued 5 item state(s)") {
		t.Fatalf("resync --all: exit %d\n%s%s", code, out, errOut)
	}
	cur1, done1, after1 := read()
	if !maps.Equal(cur0, cur1) || done0 != done1 || after0 != after1 {
		t.Errorf("resync moved the detection position: %v %v %v -> %v %v %v", cur0, done0, after0, cur1, done1, after1)
	}
	st := waitStatus(t, e, "five pending", func(st tenantStatus) bool { return true })
	if st.Pending != n {
		t.Errorf("pending %d after resync, want %d", st.Pending, n)
	}
	before := versions(e)
	e.Start()
	defer e.Stop()
	waitNewer(t, e, before, "ITEM-00001", "ITEM-00002", "ITEM-00003", "ITEM-00004", "ITEM-00005")
}

// TestResyncRefusesDuringInitialSync: --all and --since wait for the
// initial sync, which sends everything anyway.
func TestResyncRefusesDuringInitialSync(t *testing.T) {
	e := sitetest.New(t, sitetest.Options{Items: 2})
	ob, err := outbox.Open(context.Background(), filepath.Join(e.Dir, "outbox.db"))
	must(t, err)
	ob.Close()
	for _, args := range [][]string{{"--all"}, {"--since", "1h"}} {
		code, _, errOut := runMain(t, "", append([]string{"resync", "--config", e.CfgPath}, args...)...)
		if code != 1 || !strings.Contains(errOut, "initial sync has not finished") {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
	}
}

func TestResyncUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "choose exactly one"},
		{[]string{"--all", "--item", "A"}, "choose exactly one"},
		{[]string{"--all", "--since", "1h"}, "choose exactly one"},
		{[]string{"A"}, "item codes follow --item"},
		{[]string{"--since", "yesterday"}, `--since "yesterday": not a time`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runMain(t, "", append([]string{"resync", "--config", "/nonexistent"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q, want 2 and %q", code, errOut, tt.want)
			}
		})
	}
}

func TestResyncProgress(t *testing.T) {
	tests := []struct {
		name  string
		tty   bool
		total int
		adds  []int
		want  []string
		not   []string
	}{
		{"plain: a line per thousand", false, 0, []int{500, 600, 999, 1}, []string{"resync: 1100 items read, 1100 queued\nresync: 2099 items read, 2099 queued\n"}, []string{"\r", "2100"}},
		{"plain: nothing under a thousand", false, 10, []int{10}, nil, []string{"resync:"}},
		{"terminal: a bar", true, 200, []int{100, 100}, []string{"\r[###############...............]  50%  100/200 items", "100%  200/200 items"}, nil},
		{"terminal: unknown total", true, 0, []int{7}, []string{"\r7 items read, 7 queued"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newResyncProgress(&b, tt.total)
			p.tty = tt.tty
			for _, n := range tt.adds {
				p.add(n, n)
				p.drawn = time.Time{} // draw every step
			}
			p.finish()
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("progress lacks %q:\n%q", w, b.String())
				}
			}
			for _, w := range tt.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("progress has %q:\n%q", w, b.String())
				}
			}
		})
	}
}
