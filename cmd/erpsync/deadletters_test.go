package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// TestDeadLetterIsNotSent: a dead-lettered state does not count as the state
// the receiver has. Once the receiver takes the items again, the item's next
// change (even one that leaves its content as the dead state had it) and a
// reconciliation sweep send the current state, a delete included. The dead
// letters are then superseded: `outbox retry` refuses them, saying why and
// what to do, and never sends their older states.
func TestDeadLetterIsNotSent(t *testing.T) {
	t.Parallel() // waits more than it computes
	ctx := context.Background()
	const n = 8
	var rejecting atomic.Bool
	poison := []string{"ITEM-00003", "ITEM-00004", "ITEM-00005"}
	e := sitetest.New(t, sitetest.Options{Items: n, Fault: func(body []byte) (int, bool) {
		if !rejecting.Load() {
			return 0, false
		}
		for _, code := range poison {
			if strings.Contains(string(body), `"item_code":"`+code+`"`) {
				return 422, true
			}
		}
		return 0, false
	}})
	e.Start()
	defer e.Stop()
	e.WaitCount(n)

	tests := []struct {
		code   string
		change func() // while the receiver refuses the item
		resend func() // once it takes it again
		want   func(receiver.Entry) bool
	}{
		{"ITEM-00003",
			func() { describe(t, e, "ITEM-00003", "<p>refused at first</p>") },
			func() { // a save that changes nothing but modified
				e.Exec("UPDATE `tabItem` SET `modified` = ? WHERE `name` = ?", e.Site.Format(time.Now()), "ITEM-00003")
			},
			func(it receiver.Entry) bool {
				return it.Op == "upsert" && it.Item["description"] == "<p>refused at first</p>"
			}},
		{"ITEM-00004",
			func() { describe(t, e, "ITEM-00004", "<p>refused at first</p>") },
			func() { e.Pipeline.Reconcile() },
			func(it receiver.Entry) bool {
				return it.Op == "upsert" && it.Item["description"] == "<p>refused at first</p>"
			}},
		{"ITEM-00005",
			func() { must(t, e.Site.DeleteItem(ctx, "ITEM-00005")) },
			func() { e.Pipeline.Reconcile() },
			func(it receiver.Entry) bool { return it.Op == "delete" }},
	}
	rejecting.Store(true)
	for _, tc := range tests {
		tc.change()
	}
	waitStatus(t, e, "three dead letters", func(st tenantStatus) bool { return st.Dead == int64(len(tests)) && st.Pending == 0 })
	before := e.Rcv.Stats()
	rejecting.Store(false)
	for _, tc := range tests { // one at a time: a sweep would send the first item too
		tc.resend()
		e.Wait(t, tc.code+" sent again", func(items map[string]receiver.Entry) bool { return tc.want(items[tc.code]) })
	}

	// The dead letters hold older states of items delivered since: retry
	// refuses each, and sends nothing.
	code, out, errOut := runBinary(t, "outbox", "retry", "--all-dead", "--config", e.CfgPath)
	if code != 1 {
		t.Errorf("retry of superseded dead letters: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, tc := range tests {
		for _, want := range []string{"(items " + tc.code + ") is superseded", "erpsync resync --item " + tc.code} {
			if !strings.Contains(errOut, want) {
				t.Errorf("retry does not say %q:\n%s", want, errOut)
			}
		}
	}
	var dead []outboxMessage
	_, js, _ := runBinary(t, "outbox", "list", "--config", e.CfgPath, "--json")
	must(t, json.Unmarshal([]byte(js), &dead))
	if len(dead) != len(tests) {
		t.Errorf("after retry: %d dead letters, want %d (superseded ones stay dead)", len(dead), len(tests))
	}
	if after := e.Rcv.Stats(); after.Stale != before.Stale {
		t.Errorf("the receiver got %d older states", after.Stale-before.Stale)
	}
	waitStatus(t, e, "nothing pending", func(st tenantStatus) bool { return st.Pending == 0 })
	e.AssertMatchesDatabase()
}

// describe sets an item's description and stamps modified, as a save does.
func describe(t *testing.T, e *sitetest.Env, code, desc string) {
	t.Helper()
	e.Exec("UPDATE `tabItem` SET `description` = ?, `modified` = ? WHERE `name` = ?", desc, e.Site.Format(time.Now()), code)
}

// TestOutboxRetrySuperseded: `outbox retry` of a dead message sends what is
// still current of it: all of it, the items that had no newer state since
// (under a new delivery id, the others named), or nothing (superseded,
// with the fix).
func TestOutboxRetrySuperseded(t *testing.T) {
	ctx := context.Background()
	secret, err := signer.NewSecret()
	must(t, err)
	tests := []struct {
		name     string
		newer    []string // items that get a newer state after the message went dead
		exit     int
		says     []string
		pending  []string // the message's items once retried; nil: still dead
		newBody  bool
		deadLeft int
	}{
		{"current", nil, 0, []string{"is pending again"}, []string{"A", "B", "C"}, false, 0},
		{"partly superseded", []string{"B"}, 0,
			[]string{"pending again without items B", "superseded", "items A,C go under the new delivery id"}, []string{"A", "C"}, true, 0},
		{"wholly superseded", []string{"A", "B", "C"}, 1,
			[]string{"(items A,B,C) is superseded", "erpsync resync --item A,B,C", "erpsync outbox purge --dead 1"}, nil, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cmdtSettings(t, fmt.Sprintf("secret = %q", secret), "http://127.0.0.1:9/ingest")
			ob, err := outbox.Open(ctx, filepath.Join(filepath.Dir(cfg), "outbox.db"))
			must(t, err)
			defer ob.Close()
			var entries [][]byte
			var items []outbox.MessageItem
			var states []outbox.ItemState
			for _, c := range []string{"A", "B", "C"} {
				entries = append(entries, fmt.Appendf(nil, `{"item_code":%q,"op":"upsert","version":1}`, c))
				items = append(items, outbox.MessageItem{Code: c, Version: 1, Op: "upsert"})
				states = append(states, outbox.ItemState{Code: c, Version: 1, Hash: "h1"})
			}
			body, err := signer.Body("d-dead", "acme", entries)
			must(t, err)
			var id int64
			must(t, ob.Update(ctx, func(tx *outbox.Tx) error {
				if id, err = tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: "d-dead", Items: items, Body: body}, time.Now()); err != nil {
					return err
				}
				return tx.PutItemStates(ctx, states)
			}))
			must(t, ob.MarkDead(ctx, id, 422, "refused", time.Now()))
			for _, c := range tc.newer {
				must(t, ob.Update(ctx, func(tx *outbox.Tx) error {
					return tx.PutItemState(ctx, outbox.ItemState{Code: c, Version: 2, Hash: "h2"})
				}))
			}

			code, out, errOut := runMain(t, "", "outbox", "retry", strconv.FormatInt(id, 10), "--config", cfg)
			if code != tc.exit {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.exit, out, errOut)
			}
			for _, want := range tc.says {
				if !strings.Contains(out+errOut, want) {
					t.Errorf("retry does not say %q:\n%s%s", want, out, errOut)
				}
			}
			m, err := ob.Get(ctx, id)
			must(t, err)
			var got []string
			for _, it := range m.Items {
				got = append(got, it.Code)
			}
			switch {
			case tc.pending == nil:
				if m.State != outbox.Dead || m.DeliveryID != "d-dead" {
					t.Errorf("a superseded message is %s as %s, want dead as it was", m.State, m.DeliveryID)
				}
			case m.State != outbox.Pending || !slices.Equal(got, tc.pending) || (m.DeliveryID != "d-dead") != tc.newBody:
				t.Errorf("retried message: %s %s %v, want pending %v (new delivery id %v)", m.State, m.DeliveryID, got, tc.pending, tc.newBody)
			case tc.newBody:
				raw, err := signer.BodyItems(m.Body)
				must(t, err)
				want, _ := signer.Body(m.DeliveryID, "acme", [][]byte{entries[0], entries[2]})
				if len(raw) != 2 || string(m.Body) != string(want) || !strings.Contains(out, m.DeliveryID) {
					t.Errorf("body sent again: %s\nwant %s", m.Body, want)
				}
			}
			if st, err := ob.Stats(ctx); err != nil || st.Dead != int64(tc.deadLeft) {
				t.Errorf("dead letters left: %+v %v, want %d", st, err, tc.deadLeft)
			}
		})
	}
}
