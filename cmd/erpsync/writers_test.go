package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/site"
)

// writersItems is how many items TestOperatorCommandsWhileDelivering seeds;
// writersPoison are refused (422) for the first half of the run, so that
// dead letters form for retry and purge to work on.
const writersItems = 300

var writersPoison = []string{"ITEM-00007", "ITEM-00123", "ITEM-00250"}

// commandRuns counts the runs of one operator command and how they ended.
type commandRuns struct {
	name           string
	runs, failures atomic.Int64
	mu             sync.Mutex
	lastFailure    string
}

// run runs the erpsync binary with args; exit codes in ok count as success.
func (c *commandRuns) run(bin string, ok []int, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "ERPSYNC_CONFIG=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	c.runs.Add(1)
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	good := false
	for _, k := range ok {
		good = good || k == code
	}
	if !good {
		c.failures.Add(1)
		c.mu.Lock()
		c.lastFailure = fmt.Sprintf("exit %d (%v): %s%s", code, err, out.String(), errOut.String())
		c.mu.Unlock()
	}
	return out.String() + errOut.String()
}

// TestOperatorCommandsWhileDelivering: the daemon delivers a bulk change and
// the edits that follow it while `erpsync resync --all`, `resync --item`,
// `outbox retry --all-dead` and `outbox purge --all-dead` run again and
// again as processes of their own, all writing the same outbox. At the end
// nothing is lost (every item state recorded delivered is the one the
// receiver holds, and the receiver equals the database), and the receiver
// never got an older state of an item after a newer one.
func TestOperatorCommandsWhileDelivering(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a while")
	}
	tests := []struct {
		name string
		slow time.Duration // the receiver takes this long per request
	}{
		{"receiver fast", 0},
		{"receiver slow-ish", 15 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // waits more than it computes
			testOperatorCommandsWhileDelivering(t, tc.slow, 16*time.Second)
		})
	}
}

func testOperatorCommandsWhileDelivering(t *testing.T, slow, runFor time.Duration) {
	ctx := context.Background()
	var rejecting atomic.Bool
	var refused atomic.Int64
	e := sitetest.New(t, sitetest.Options{Items: writersItems, Fault: func(body []byte) (int, bool) {
		if slow > 0 {
			time.Sleep(slow/2 + rand.N(slow))
		}
		if rejecting.Load() {
			for _, code := range writersPoison {
				if bytes.Contains(body, []byte(`"item_code":"`+code+`"`)) {
					refused.Add(1)
					return 422, true
				}
			}
		}
		return 0, false
	}})
	bin := erpsyncBinary(t)
	e.Start()
	defer e.Stop()
	e.WaitCount(writersItems)
	obPath := filepath.Join(e.Dir, "outbox.db")
	ob, err := outbox.Open(ctx, obPath)
	must(t, err)
	defer ob.Close()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		done, _, err := site.InitialSync(ctx, ob)
		must(t, err)
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the initial sync did not finish within 60s")
		}
	}
	var codes []string
	for i := 1; i <= writersItems; i++ {
		codes = append(codes, fmt.Sprintf("ITEM-%05d", i))
	}

	rejecting.Store(true)
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	var edits atomic.Int64
	var editErr atomic.Value
	// The bulk change, then edits of random items, as people make them.
	wg.Go(func() {
		round := 0
		edit := func(part []string) {
			round++
			args := []any{fmt.Sprintf("<p>edit %d</p>", round), e.Site.Format(time.Now())}
			for _, c := range part {
				args = append(args, c)
			}
			q := "UPDATE `tabItem` SET `description` = ?, `modified` = ? WHERE `name` IN (?" + strings.Repeat(",?", len(part)-1) + ")"
			if _, err := e.DB.ExecContext(ctx, q, args...); err != nil {
				editErr.Store(err)
				return
			}
			edits.Add(int64(len(part)))
		}
		for lo := 0; lo < len(codes); lo += 50 {
			edit(codes[lo:min(lo+50, len(codes))])
		}
		for !stopped() {
			time.Sleep(20 * time.Millisecond)
			edit([]string{codes[rand.IntN(len(codes))], codes[rand.IntN(len(codes))]})
		}
	})
	resyncAll := &commandRuns{name: "resync --all"}
	resyncItem := &commandRuns{name: "resync --item"}
	retry := &commandRuns{name: "outbox retry --all-dead"}
	purge := &commandRuns{name: "outbox purge --all-dead"}
	var supersededSaid atomic.Int64
	wg.Go(func() {
		for !stopped() {
			resyncAll.run(bin, []int{0}, "resync", "--config", e.CfgPath, "--all")
		}
	})
	wg.Go(func() {
		for !stopped() {
			pick := []string{codes[rand.IntN(len(codes))], writersPoison[rand.IntN(len(writersPoison))]}
			resyncItem.run(bin, []int{0}, "resync", "--config", e.CfgPath, "--item", strings.Join(pick, ","))
		}
	})
	wg.Go(func() {
		for !stopped() {
			// Exit 1 when a dead letter is superseded: it says so.
			out := retry.run(bin, []int{0, 1}, "outbox", "retry", "--config", e.CfgPath, "--all-dead")
			if strings.Contains(out, "superseded") {
				supersededSaid.Add(1)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for !stopped() {
			time.Sleep(time.Second)
			purge.run(bin, []int{0}, "outbox", "purge", "--config", e.CfgPath, "--all-dead")
		}
	})
	// Refuse the poison items for half the run, and until some dead
	// letters formed; then accept everything for the rest of it, and until
	// every command ran a few times: a loaded machine runs fewer.
	start := time.Now()
	waitUntil := func(cond func() bool) {
		for limit := start.Add(runFor + 2*time.Minute); !cond() && time.Now().Before(limit); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil(func() bool { return time.Since(start) >= runFor/2 && refused.Load() > 0 })
	rejecting.Store(false)
	waitUntil(func() bool {
		if time.Since(start) < runFor {
			return false
		}
		for _, c := range []*commandRuns{resyncAll, resyncItem, retry, purge} {
			if c.runs.Load() < 3 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	if err, _ := editErr.Load().(error); err != nil {
		t.Fatalf("editing the database: %v", err)
	}

	// What is left dead goes again (or is superseded); a sweep sends
	// the items whose last state went dead and was purged.
	retry.run(bin, []int{0, 1}, "outbox", "retry", "--config", e.CfgPath, "--all-dead")
	e.Pipeline.Reconcile()
	e.WaitLog(t, "reconciliation done")
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := ob.Stats(ctx)
		must(t, err)
		if st.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not drain within 120s: %+v", st)
		}
	}

	for _, c := range []*commandRuns{resyncAll, resyncItem, retry, purge} {
		t.Logf("%s: %d runs, %d failed", c.name, c.runs.Load(), c.failures.Load())
		if c.failures.Load() > 0 {
			t.Errorf("%s failed %d of %d times; last: %s", c.name, c.failures.Load(), c.runs.Load(), c.lastFailure)
		}
		if c.runs.Load() < 3 {
			t.Errorf("%s ran %d times: the commands did not overlap the daemon's work", c.name, c.runs.Load())
		}
	}
	rst := e.Rcv.Stats()
	st, err := ob.Stats(ctx)
	must(t, err)
	t.Logf("edits %d, refused by the receiver %d, retry said superseded %d times; receiver: %d requests, %d accepted, %d item states, %d duplicates, %d restated, %d stale; outbox: %+v",
		edits.Load(), refused.Load(), supersededSaid.Load(), rst.Requests, rst.Accepted, rst.Items, rst.Duplicates, rst.Restated, rst.Stale, st)
	if refused.Load() == 0 {
		t.Error("no request was refused: retry and purge had no dead letters to work on")
	}

	// Lost: an item state recorded delivered that the receiver does not hold.
	got := e.Rcv.Items(sitetest.Tenant)
	lost := 0
	for _, code := range codes {
		is, ok, err := ob.ItemState(ctx, code)
		must(t, err)
		if !ok {
			t.Errorf("item %s was never queued", code)
			continue
		}
		if is.DeliveredVersion > 0 && got[code].Version < is.DeliveredVersion {
			lost++
			if lost <= 10 {
				t.Errorf("item %s: version %d recorded delivered, the receiver holds version %d", code, is.DeliveredVersion, got[code].Version)
			}
		}
	}
	t.Logf("lost %d, older after newer %d", lost, rst.Stale)
	if lost > 0 {
		t.Errorf("%d item states recorded delivered never reached the receiver", lost)
	}
	if rst.Stale > 0 {
		t.Errorf("the receiver got %d item states older than one it already held", rst.Stale)
	}
	for reason, n := range rst.Rejected {
		if reason != "fault" {
			t.Errorf("the receiver rejected %d requests for %s", n, reason)
		}
	}
	e.AssertMatchesDatabase()
}
