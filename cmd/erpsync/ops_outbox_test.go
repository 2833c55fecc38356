package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
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

// TestOutboxDeadLetterReplay: a rejected item becomes a dead letter; list
// and show find it, show prints the exact request, retry delivers it once the
// receiver accepts it, purge drops delivered history. The daemon runs
// throughout.
func TestOutboxDeadLetterReplay(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	const n = 6
	var reject atomic.Bool
	reject.Store(true)
	e := sitetest.New(t, sitetest.Options{Items: n, Fault: func(body []byte) (int, bool) {
		return 422, reject.Load() && strings.Contains(string(body), `"item_code":"ITEM-00003"`)
	}})
	e.Start()
	defer e.Stop()
	waitStatus(t, e, "one dead letter", func(st tenantStatus) bool { return st.Dead == 1 && st.Delivered == n-1 })

	// list: the dead letters by default.
	code, out, errOut := runBinary(t, "outbox", "list", "--config", e.CfgPath)
	if code != 0 || !strings.Contains(out, "ITEM-00003") || !strings.Contains(out, "dead") || !strings.Contains(out, "422") || strings.Contains(out, "ITEM-00002") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	var listed []outboxMessage
	code, js, _ := runBinary(t, "outbox", "list", "--config", e.CfgPath, "--json")
	must(t, json.Unmarshal([]byte(js), &listed))
	if code != 0 || len(listed) != 1 || listed[0].State != "dead" || listed[0].Items[0].Code != "ITEM-00003" || listed[0].LastStatus != 422 {
		t.Fatalf("list --json: %s", js)
	}
	dead := listed[0]
	id := strconv.FormatInt(dead.ID, 10)

	listTests := []struct {
		args []string
		want int
	}{
		{[]string{"--state", "all"}, n},
		{[]string{"--state", "delivered"}, n - 1},
		{[]string{"--state", "pending"}, 0},
		{[]string{"--state", "all", "--limit", "2"}, 2},
		{[]string{"--item", "ITEM-00003"}, 1},
		{[]string{"--item", "ITEM-00001", "--state", "dead"}, 0},
	}
	for _, tt := range listTests {
		var got []outboxMessage
		_, js, _ := runBinary(t, append([]string{"outbox", "list", "--config", e.CfgPath, "--json"}, tt.args...)...)
		must(t, json.Unmarshal([]byte(js), &got))
		if len(got) != tt.want {
			t.Errorf("list %v: %d messages, want %d", tt.args, len(got), tt.want)
		}
	}

	// show: the exact body and a valid signature over it, by number or by
	// delivery id.
	ob, err := outbox.Open(context.Background(), filepath.Join(e.Dir, "outbox.db"))
	must(t, err)
	stored, err := ob.Get(context.Background(), dead.ID)
	ob.Close()
	must(t, err)
	key, err := signer.DecodeSecret(e.Secret)
	must(t, err)
	for _, ref := range []string{id, dead.DeliveryID} {
		code, out, errOut := runBinary(t, "outbox", "show", ref, "--config", e.CfgPath)
		if code != 0 {
			t.Fatalf("show %s: exit %d: %s", ref, code, errOut)
		}
		head, body, ok := strings.Cut(out, "\n\n{")
		if !ok {
			t.Fatalf("show: no body:\n%s", out)
		}
		_, req, _ := strings.Cut(head, "POST ")
		if body = "{" + strings.TrimSuffix(body, "\n"); body != string(stored.Body) {
			t.Errorf("show prints body\n%s\nwant\n%s", body, stored.Body)
		}
		h := map[string]string{}
		for _, line := range strings.Split(req, "\n")[1:] {
			k, v, _ := strings.Cut(line, ": ")
			h[k] = v
		}
		if !strings.HasPrefix(req, e.URL+"\n") || h[signer.HeaderDeliveryID] != dead.DeliveryID || h[signer.HeaderTenant] != sitetest.Tenant ||
			h["Content-Type"] != "application/json" || !strings.HasPrefix(h["User-Agent"], "erpsync/") {
			t.Errorf("show headers %v\n%s", h, out)
		}
		if err := signer.Verify(key, h[signer.HeaderTimestamp], stored.Body, h[signer.HeaderSignature], time.Now(), signer.Window); err != nil {
			t.Errorf("printed signature does not verify: %v\n%s", err, out)
		}
		assertNoSecrets(t, e, out, errOut)
	}
	code, raw, _ := runBinary(t, "outbox", "show", id, "--body", "--config", e.CfgPath)
	if code != 0 || raw != string(stored.Body) {
		t.Errorf("show --body printed %q, want the body exactly", raw)
	}
	code, js, _ = runBinary(t, "outbox", "show", id, "--json", "--timestamp", "1700000000", "--config", e.CfgPath)
	var shown struct {
		outboxMessage
		Request struct {
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		} `json:"request"`
	}
	must(t, json.Unmarshal([]byte(js), &shown))
	if code != 0 || shown.Request.Body != string(stored.Body) ||
		shown.Request.Headers[signer.HeaderSignature] != signer.Sign(key, 1700000000, stored.Body) {
		t.Errorf("show --json: %s", js)
	}
	if code, _, errOut := runBinary(t, "outbox", "show", "999999", "--config", e.CfgPath); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("show of a missing message: exit %d %s", code, errOut)
	}

	// retry: once the receiver accepts the item, the retried message lands.
	before := e.Rcv.Items(sitetest.Tenant)
	if _, ok := before["ITEM-00003"]; ok {
		t.Fatal("the rejected item reached the receiver")
	}
	reject.Store(false)
	code, out, errOut = runBinary(t, "outbox", "retry", id, "--config", e.CfgPath)
	if code != 0 || !strings.Contains(out, "is pending again") {
		t.Fatalf("retry: exit %d\n%s%s", code, out, errOut)
	}
	e.Wait(t, "the retried item", func(items map[string]receiver.Entry) bool { _, ok := items["ITEM-00003"]; return ok })
	waitStatus(t, e, "no dead letters", func(st tenantStatus) bool { return st.Dead == 0 && st.Delivered == n })
	if code, out, _ := runBinary(t, "outbox", "retry", "--all-dead", "--config", e.CfgPath); code != 0 || !strings.Contains(out, "nothing to retry") {
		t.Errorf("retry --all-dead with none: exit %d %s", code, out)
	}
	if code, _, errOut := runBinary(t, "outbox", "retry", id, "--config", e.CfgPath); code != 1 || !strings.Contains(errOut, "was delivered") {
		t.Errorf("retry of a delivered message: exit %d %s", code, errOut)
	}

	// purge --delivered: the history goes, status counts follow.
	code, out, _ = runBinary(t, "outbox", "purge", "--delivered", "--config", e.CfgPath)
	if code != 0 || !strings.Contains(out, "deleted 6 delivered") {
		t.Errorf("purge --delivered: exit %d %s", code, out)
	}
	waitStatus(t, e, "no delivered history", func(st tenantStatus) bool { return st.Delivered == 0 })
	code, out, errOut = runBinary(t, "outbox", "purge", "--all-dead", "--config", e.CfgPath)
	if _, supported := any((*outbox.Outbox)(nil)).(deadPurger); supported {
		if code != 0 || !strings.Contains(out, "nothing to purge") {
			t.Errorf("purge --all-dead with none: exit %d %s%s", code, out, errOut)
		}
	} else if code != 1 || !strings.Contains(errOut, "cannot delete dead messages yet") {
		t.Errorf("purge --all-dead without outbox support: exit %d %s%s", code, out, errOut)
	}
}

// TestOutboxUsage: wrong invocations exit 2 with the reason.
func TestOutboxUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"outbox"}, "missing subcommand"},
		{[]string{"outbox", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"outbox", "show"}, "one message ID"},
		{[]string{"outbox", "show", "1", "2"}, "one message ID"},
		{[]string{"outbox", "retry"}, "message IDs or --all-dead"},
		{[]string{"outbox", "retry", "1", "--all-dead"}, "message IDs or --all-dead"},
		{[]string{"outbox", "list", "--state", "lost"}, `--state "lost"`},
		{[]string{"outbox", "purge"}, "say what to purge"},
		{[]string{"outbox", "purge", "--delivered", "--all-dead"}, "not both"},
		{[]string{"outbox", "purge", "--dead"}, "takes message IDs"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runMain(t, "", tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q, want 2 and %q", code, errOut, tt.want)
			}
		})
	}
	code, out, _ := runMain(t, "", "help", "outbox")
	if code != 0 || !regexp.MustCompile(`(?s)list.*show ID.*retry.*purge`).MatchString(out) {
		t.Errorf("help outbox: exit %d\n%s", code, out)
	}
}
