package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2/toxics"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/signer"
)

// haItems is how many items TestHAStandby changes again and again.
const haItems = 500

// haTakeoverLimit is how soon a standby must take over (issue 16).
const haTakeoverLimit = 15 * time.Second

// TestHAStandby runs `erpsync run` with ha.enabled on two "hosts" (two
// processes, each with its own settings file, outbox and sync log, each
// reaching MariaDB through its own proxy) delivering to one receiver, while
// every item is changed again and again, and ends the active one three
// ways: SIGKILL; cut off with toxiproxy's timeout toxic (nothing passes,
// though a connection the process closes is closed on the server too); and
// cut off silently (the blackhole toxic: the server never learns, so the
// standby must end the dead holder's connection). Each round: the standby
// takes over within 15 s, the receiver comes to equal the database (lost 0),
// and no item state arrives after a newer one (older_after_newer 0). States
// sent again (the new active one's outbox is behind) are counted.
func TestHAStandby(t *testing.T) {
	t.Parallel() // mostly waits: for takeovers and the receiver
	toxics.Register("blackhole", new(blackholeToxic))
	f := newFaultRun(t, faultOptions{items: haItems})
	resent := newResendCount(f)
	editSettings(t, f.Env, "[log]", "[ha]\nenabled = true\n\n[log]")
	codes := f.codes()
	pa, pb := startDBProxy(t, f.dbAddr()), startDBProxy(t, f.dbAddr())
	a := newHAProc(t, f, "a", pa.addr, f.LogPath)
	b := newHAProc(t, f, "b", pb.addr, filepath.Join(f.Dir, "b", "sync.log"))
	a.start()
	a.waitCount("active for site", 1, 30*time.Second)
	b.start()
	b.waitCount("standby: ", 1, 30*time.Second)
	if _, bad := f.waitEqual(f.dbState()); len(bad) > 0 {
		t.Fatalf("the initial sync did not reach the receiver: %d items differ, e.g. %v", len(bad), bad[:min(5, len(bad))])
	}

	rounds := []struct {
		name            string
		active, standby *haProc
		fault           func()
		heal            func()
		killed          bool // the standby must end the active one's connection as a dead holder
	}{
		{
			name: "SIGKILL the active one", active: a, standby: b,
			fault: a.kill9,
			heal: func() {
				n := a.count("standby: ")
				a.start()
				a.waitCount("standby: ", n+1, 30*time.Second)
				checkHAStatus(t, f, a, b)
			},
		},
		{
			name: "cut the active one off (timeout toxic)", active: b, standby: a,
			fault: func() {
				pb.addToxic(t, "cut_down", "timeout", "downstream", map[string]any{"timeout": 0})
				pb.addToxic(t, "cut_up", "timeout", "upstream", map[string]any{"timeout": 0})
			},
			heal: func() {
				n := b.count("standby: ")
				pb.removeToxic(t, "cut_down")
				pb.removeToxic(t, "cut_up")
				b.waitCount("standby: ", n+1, 30*time.Second)
			},
		},
		{
			name: "cut the active one off silently (blackhole)", active: a, standby: b,
			fault: func() {
				pa.addToxic(t, "hole_down", "blackhole", "downstream", nil)
				pa.addToxic(t, "hole_up", "blackhole", "upstream", nil)
			},
			killed: true,
		},
	}
	for i, r := range rounds {
		before, olderBefore, resentBefore := f.Rcv.Stats(), f.order.older(), resent.count()
		logFrom := map[*haProc]int{a: len(a.log()), b: len(b.log())}
		stop := make(chan struct{})
		errs := f.changeUntil(stop, codes, 30*time.Millisecond)
		time.Sleep(1500 * time.Millisecond) // changes flow through the active one
		took := r.standby.becomesActive(r.fault)
		time.Sleep(1500 * time.Millisecond) // and through the new active one
		close(stop)
		must(t, <-errs)
		if i == 0 {
			f.deleteSome()
		}
		cleared := time.Now()
		_, bad := f.waitEqual(f.dbState())
		recovery := time.Since(cleared)
		after := f.Rcv.Stats()
		stale, older := after.Stale-before.Stale, f.order.older()-olderBefore
		t.Logf("HA    %-44s items_changed=%d takeover=%s receiver_requests=%d duplicates=%d resent=%d older_after_newer=%d lost=%d recovery=%s",
			r.name, len(codes), took.Round(10*time.Millisecond), after.Requests-before.Requests, after.Duplicates-before.Duplicates,
			resent.count()-resentBefore, stale+int64(older), len(bad), recovery.Round(10*time.Millisecond))
		if took > haTakeoverLimit {
			t.Errorf("%s: the standby took over after %s, want within %s", r.name, took.Round(time.Millisecond), haTakeoverLimit)
		}
		if len(bad) > 0 {
			t.Errorf("%s: the receiver did not come to equal the database within %s: %d items differ, e.g. %v",
				r.name, faultRecoveryLimit, len(bad), bad[:min(5, len(bad))])
			for _, p := range []*haProc{a, b} {
				t.Logf("%s: the sync log of %s in this round, its role and the first items that differ:\n%s", r.name, p.name, p.roundLines(logFrom[p], bad))
			}
		}
		if stale != 0 || older != 0 {
			t.Errorf("%s: %d item states arrived after a newer one (ignored by the receiver), %d accepted though older than one before: %v",
				r.name, stale, older, f.order.examples())
		}
		if killed := strings.Contains(r.standby.log(), "KILL CONNECTION"); killed != r.killed {
			t.Errorf("%s: the standby ended the active one's connection: %v, want %v", r.name, killed, r.killed)
		}
		if r.heal != nil {
			r.heal()
		}
	}
	a.stop()
	b.stop()
	f.output("the sync log of b", b.log())
	f.output("the stderr of a", a.stderr.String())
	f.output("the stderr of b", b.stderr.String())
	if n := f.secretsFound(); n != 0 {
		t.Errorf("%d secrets in the outputs", n)
	}
}

// checkHAStatus checks what `erpsync status` and `erpsync check` say on the
// standby's host and on the active one's.
func checkHAStatus(t *testing.T, f *faultRun, standby, active *haProc) {
	t.Helper()
	for _, tc := range []struct {
		p        *haProc
		role     string
		text     string
		hostSeen bool
	}{
		{p: standby, role: "standby", text: "standby; active on 127.0.0.1 since", hostSeen: true},
		{p: active, role: "active", text: "active here (127.0.0.1) since", hostSeen: true},
	} {
		code, out, errOut := runMain(t, "", "status", "--config", tc.p.cfgPath)
		f.output("status of "+tc.p.name, out+errOut)
		if code != 0 || !strings.Contains(out, tc.text) {
			t.Errorf("erpsync status on %s (exit %d) does not say %q:\n%s%s", tc.p.name, code, tc.text, out, errOut)
		}
		code, out, errOut = runMain(t, "", "status", "--json", "--config", tc.p.cfgPath)
		f.output("status --json of "+tc.p.name, out+errOut)
		var st []tenantStatus
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st) != 1 || st[0].HA == nil {
			t.Errorf("erpsync status --json on %s (exit %d, %v):\n%s%s", tc.p.name, code, err, out, errOut)
		} else if h := st[0].HA; h.Role != tc.role || h.ActiveHost != "127.0.0.1" || h.Since == nil || time.Since(*h.Since) > time.Minute {
			t.Errorf("erpsync status --json on %s: ha %+v, want %s, active on 127.0.0.1 since less than a minute", tc.p.name, h, tc.role)
		}
		_, out, errOut = runMain(t, "", "check", "--config", tc.p.cfgPath)
		f.output("check of "+tc.p.name, out+errOut)
		if want := "the named lock works (a test lock taken and released); site lock erpsync:"; !strings.Contains(out, want) ||
			!strings.Contains(out, "the erpsync on host 127.0.0.1 holds it now") {
			t.Errorf("erpsync check on %s does not say the lock works and who holds it:\n%s", tc.p.name, grepLines(out, " ha ", 5))
		}
	}
}

// haProc is one `erpsync run` with ha.enabled: its settings file (the
// case's, with its own outbox and sync log, reaching MariaDB at dbAddr).
type haProc struct {
	t       *testing.T
	name    string
	cfgPath string
	logPath string
	stderr  *sitetest.LockedBuffer
	cmd     *exec.Cmd
	done    chan error
}

func newHAProc(t *testing.T, f *faultRun, name, dbAddr, logPath string) *haProc {
	t.Helper()
	b, err := os.ReadFile(f.CfgPath)
	must(t, err)
	s := strings.Replace(string(b), "@tcp("+f.dbAddr()+")/", "@tcp("+dbAddr+")/", 1)
	dir := filepath.Join(f.Dir, name)
	must(t, os.MkdirAll(dir, 0o700))
	s = strings.Replace(s, fmt.Sprintf("path = %q", filepath.Join(f.Dir, "outbox.db")), fmt.Sprintf("path = %q", filepath.Join(dir, "outbox.db")), 1)
	s = strings.Replace(s, fmt.Sprintf("file = %q", f.LogPath), fmt.Sprintf("file = %q", logPath), 1)
	if !strings.Contains(s, dbAddr) || !strings.Contains(s, filepath.Join(dir, "outbox.db")) || !strings.Contains(s, logPath) || !strings.Contains(s, "[ha]") {
		t.Fatalf("could not make the settings of %s:\n%s", name, s)
	}
	p := &haProc{t: t, name: name, cfgPath: filepath.Join(dir, "settings.toml"), logPath: logPath, stderr: &sitetest.LockedBuffer{}}
	must(t, os.WriteFile(p.cfgPath, []byte(s), 0o600))
	t.Cleanup(func() {
		if p.cmd != nil {
			p.kill9()
		}
		if t.Failed() {
			l := p.log()
			t.Logf("the sync log of %s (last 4000 bytes):\n%s", name, l[max(0, len(l)-4000):])
		}
	})
	return p
}

func (p *haProc) start() {
	p.t.Helper()
	cmd := exec.Command(erpsyncBinary(p.t), "run", "--config", p.cfgPath)
	cmd.Stderr = p.stderr
	must(p.t, cmd.Start())
	p.cmd, p.done = cmd, make(chan error, 1)
	done := p.done
	go func() { done <- cmd.Wait() }()
}

func (p *haProc) kill9() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not die within 30s of SIGKILL", p.name)
	}
	p.cmd = nil
}

// stop sends SIGTERM and wants exit 0 within 20s.
func (p *haProc) stop() {
	p.t.Helper()
	must(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("%s exited with %v after SIGTERM", p.name, err)
		}
	case <-time.After(20 * time.Second):
		p.t.Errorf("%s did not exit within 20s of SIGTERM", p.name)
		p.kill9()
	}
	p.cmd = nil
}

func (p *haProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *haProc) count(s string) int { return strings.Count(p.log(), s) }

// roundLines returns the lines of the sync log from byte from on that tell
// the process's role and progress, or name one of the first items of bad
// ("ITEM-00097 missing"), at most 80: enough to tell a change lost from one
// late.
func (p *haProc) roundLines(from int, bad []string) string {
	l := p.log()
	l = l[min(from, len(l)):]
	want := []string{"active for site", "standby: ", "taking over", "initial sync done", "ERROR", "WARN"}
	for _, b := range bad[:min(5, len(bad))] {
		code, _, _ := strings.Cut(b, " ")
		want = append(want, code)
	}
	var out []string
	for _, line := range strings.Split(l, "\n") {
		for _, w := range want {
			if strings.Contains(line, w) && len(out) < 80 {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// waitCount waits until the sync log holds s n times.
func (p *haProc) waitCount(s string, n int, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for p.count(s) < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %q is not %d times in the sync log within %s:\n%s", p.name, s, n, within, grepLines(p.log(), "msg=", 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// becomesActive runs fault and returns how long after it p logged its
// takeover.
func (p *haProc) becomesActive(fault func()) time.Duration {
	p.t.Helper()
	n := p.count("active for site")
	at := time.Now()
	fault()
	p.waitCount("active for site", n+1, haTakeoverLimit+15*time.Second)
	return time.Since(at)
}

// blackholeToxic drops every byte and never closes the other side, even
// when this side closes (toxiproxy's timeout toxic passes a close on): the
// server keeps the connection, idle, as when a network silently drops a
// host.
type blackholeToxic struct{}

func (*blackholeToxic) Pipe(stub *toxics.ToxicStub) {
	input := stub.Input
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-input:
			if c == nil {
				input = nil // closed: wait for the interrupt, closing nothing
			}
		}
	}
}

// resendCount counts the item states the receiver accepts that equal the
// state it held for the item (same op and modified stamp, a higher
// version): states sent again, as a standby whose outbox is behind sends
// after taking over.
type resendCount struct {
	mu     sync.Mutex
	bodies map[string][]byte // request body by delivery id, until accepted
	last   map[string]string // item code -> op and modified of the state held
	n      int
	next   func(r *http.Request, body []byte) (int, http.Header, bool)
	out    *orderCheck
}

// newResendCount puts a receiver that tells the count, and the fault
// run's order check, of every accepted state in place of f's (before any
// request).
func newResendCount(f *faultRun) *resendCount {
	c := &resendCount{bodies: map[string][]byte{}, last: map[string]string{}, next: f.fault, out: f.order}
	key, err := signer.DecodeSecret(f.Secret)
	must(f.t, err)
	f.Rcv = receiver.New(receiver.Options{Tenants: map[string][]byte{sitetest.Tenant: key}, Fault: c.fault, Out: c})
	return c
}

func (c *resendCount) fault(r *http.Request, body []byte) (int, http.Header, bool) {
	c.mu.Lock()
	c.bodies[r.Header.Get(signer.HeaderDeliveryID)] = bytes.Clone(body)
	c.mu.Unlock()
	return c.next(r, body)
}

// Write takes the receiver's lines for one accepted delivery (see
// orderCheck.Write) and passes them on to the order check.
func (c *resendCount) Write(p []byte) (int, error) {
	c.mu.Lock()
	entries := map[string]map[string]wireEntry{}
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		line, _, _ = strings.Cut(line, " name=")
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
			entries[d] = map[string]wireEntry{}
			if json.Unmarshal(c.bodies[d], &body) == nil {
				for _, e := range body.Items {
					entries[d][e.Code] = e
				}
			}
		}
		e, ok := entries[d][code]
		if !ok {
			continue
		}
		state := e.Op + " " + e.Modified
		if c.last[code] == state {
			c.n++
		}
		c.last[code] = state
	}
	for d := range entries {
		delete(c.bodies, d)
	}
	c.mu.Unlock()
	return c.out.Write(p)
}

func (c *resendCount) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
