package outbox

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests here open one file with several Outboxes: separate connections,
// as separate processes have (the daemon, `erpsync resync`, `erpsync outbox
// retry`), sharing nothing in Go.

// TestClaimChecksWhatAnotherConnectionChanged: a message changed by another
// connection between Claim's read of what is due and the transaction that
// begins the attempt is not handed out as it was read.
func TestClaimChecksWhatAnotherConnectionChanged(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// change runs on the other connection while Claim is between its
		// read and its write.
		change func(t *testing.T, other *Outbox, ids map[string]int64)
		want   []string // delivery ids Claim hands out
		then   []string // and the next Claim
	}{
		{"rewritten (coalescing in resync)", func(t *testing.T, other *Outbox, ids map[string]int64) {
			must(t, other.Update(ctx, func(tx *Tx) error {
				if _, err := tx.Waiting(ctx, []string{"A"}); err != nil {
					return err
				}
				return tx.Rewrite(ctx, ids["m1"], msg("m1b", 2, "A"), t0)
			}))
		}, []string{"m1b", "m2"}, nil},
		{"dropped", func(t *testing.T, other *Outbox, ids map[string]int64) {
			must(t, other.Update(ctx, func(tx *Tx) error {
				if _, err := tx.Waiting(ctx, []string{"A"}); err != nil {
					return err
				}
				return tx.DropMessage(ctx, ids["m1"])
			}))
		}, []string{"m2"}, nil},
		{"an older message of its item retried", func(t *testing.T, other *Outbox, ids map[string]int64) {
			must(t, other.Retry(ctx, ids["m0"], t0))
		}, []string{"m0", "m2"}, nil},
		{"unchanged", func(t *testing.T, other *Outbox, ids map[string]int64) {}, []string{"m1", "m2"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			daemon, other := openTest(t, path), openTest(t, path)
			ids := setup(t, daemon, spec{"m0", []string{"A"}, 0}, spec{"m1", []string{"A"}, 0}, spec{"m2", []string{"B"}, 0})
			must(t, daemon.MarkDead(ctx, ids["m0"], 422, "refused", t0))
			daemon.afterDue = func() { tc.change(t, other, ids) }
			got := claim(t, daemon, t0, 10)
			daemon.afterDue = nil
			if !slices.Equal(deliveryIDs(got), tc.want) {
				t.Errorf("Claim = %v, want %v", deliveryIDs(got), tc.want)
			}
			for _, m := range got {
				assertStoredAsSent(t, other, m)
			}
			if next := claim(t, daemon, t0, 10); !slices.Equal(deliveryIDs(next), tc.then) && !(len(next) == 0 && len(tc.then) == 0) {
				t.Errorf("next Claim = %v, want %v", deliveryIDs(next), tc.then)
			}
			if c := daemon.Claimed(); len(c) != len(tc.want)+len(tc.then) {
				t.Errorf("claimed %v: a message not handed out stays claimed", c)
			}
		})
	}
}

// assertStoredAsSent fails unless o stores message m as it was handed out.
func assertStoredAsSent(t *testing.T, o *Outbox, m Message) {
	t.Helper()
	s, err := o.Get(context.Background(), m.ID)
	if err != nil {
		t.Errorf("message %d handed out as %s: %v", m.ID, m.DeliveryID, err)
		return
	}
	if s.DeliveryID != m.DeliveryID || string(s.Body) != string(m.Body) || !slices.Equal(s.Items, m.Items) {
		t.Errorf("message %d handed out as %s %q, stored as %s %q", m.ID, m.DeliveryID, m.Body, s.DeliveryID, s.Body)
	}
}

// TestMarkDeliveredChecksTheDeliveryID: a message that holds another delivery
// id than the one sent (rewritten by a process that broke the rules, say an
// older erpsync) is not recorded delivered, nor are its item states.
func TestMarkDeliveredChecksTheDeliveryID(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		batch   func(ids map[string]int64) []Accepted
		skipped []string
	}{
		{"one, rewritten", func(ids map[string]int64) []Accepted {
			return []Accepted{{ID: ids["m1"], Status: 200, DeliveryID: "m1"}}
		}, []string{"m1"}},
		{"several, one rewritten", func(ids map[string]int64) []Accepted {
			return []Accepted{{ID: ids["m1"], Status: 200, DeliveryID: "m1"}, {ID: ids["m2"], Status: 200, DeliveryID: "m2"}, {ID: ids["m3"], Status: 200}}
		}, []string{"m1"}},
		{"ids and delivery ids crossed", func(ids map[string]int64) []Accepted {
			return []Accepted{{ID: ids["m2"], Status: 200, DeliveryID: "m3"}, {ID: ids["m3"], Status: 200, DeliveryID: "m2"}}
		}, []string{"m2", "m3"}},
		{"unchanged", func(ids map[string]int64) []Accepted {
			return []Accepted{{ID: ids["m2"], Status: 200, DeliveryID: "m2"}, {ID: ids["m3"], Status: 201, DeliveryID: "m3"}}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := openTest(t, "")
			ids := map[string]int64{}
			must(t, o.Update(ctx, func(tx *Tx) error {
				for i, code := range []string{"A", "B", "C"} {
					m := msg(fmt.Sprintf("m%d", i+1), 1, code)
					id, err := tx.AddMessage(ctx, m, t0)
					if err != nil {
						return err
					}
					ids[m.DeliveryID] = id
					if err := tx.PutItemState(ctx, ItemState{Code: code, Version: 1, Hash: "h1"}); err != nil {
						return err
					}
				}
				return nil
			}))
			claim(t, o, t0, 10)
			// m1 gets a new body and version 2 of A behind the daemon's back.
			_, err := o.w.ExecContext(ctx, `UPDATE messages SET delivery_id = 'm1b' WHERE id = ?1;
				UPDATE message_items SET version = 2 WHERE message_id = ?1;
				UPDATE items SET version = 2, hash = 'h2' WHERE item_code = 'A'`, ids["m1"])
			must(t, err)
			skipped, err := o.MarkDeliveredBatch(ctx, tc.batch(ids), t0)
			must(t, err)
			var want []int64
			for _, name := range tc.skipped {
				want = append(want, ids[name])
			}
			slices.Sort(skipped)
			if !slices.Equal(skipped, want) {
				t.Errorf("skipped %v, want %v (%v)", skipped, want, tc.skipped)
			}
			if m, _ := o.Get(ctx, ids["m1"]); m.State != Pending {
				t.Errorf("the rewritten message is %s, want pending", m.State)
			}
			if st, _, _ := o.ItemState(ctx, "A"); st.DeliveredVersion != 0 {
				t.Errorf("item A recorded delivered at version %d, which was never sent", st.DeliveredVersion)
			}
		})
	}
	t.Run("without a delivery id, as before", func(t *testing.T) {
		o := openTest(t, "")
		ids := setup(t, o, spec{"m1", []string{"A"}, 0})
		claim(t, o, t0, 1)
		if skipped, err := o.MarkDeliveredBatch(ctx, []Accepted{{ID: ids["m1"], Status: 200}}, t0); err != nil || len(skipped) != 0 {
			t.Fatalf("MarkDeliveredBatch: %v %v", skipped, err)
		}
	})
}

// stressBody is a message body the stress test can read back: the delivery
// id, then item=version pairs.
func stressBody(id string, items []MessageItem) []byte {
	var b strings.Builder
	b.WriteString(id)
	for _, it := range items {
		fmt.Fprintf(&b, "|%s=%d", it.Code, it.Version)
	}
	return []byte(b.String())
}

func stressMessage(items []MessageItem) NewMessage {
	id := fmt.Sprintf("d-%016x", rand.Uint64())
	slices.SortFunc(items, func(a, b MessageItem) int { return strings.Compare(a.Code, b.Code) })
	return NewMessage{DeliveryID: id, Items: items, Body: stressBody(id, items)}
}

// stressRun is what the goroutines of TestWritersOnOneFile share.
type stressRun struct {
	ctx    context.Context
	codes  []string
	dead   bool // the daemon dead-letters some messages; an operator retries and purges
	stop   atomic.Bool
	drain  atomic.Bool // the writers stopped: the daemon accepts everything
	counts struct{ claims, sent, rewrites, added, refused, deadened, retried, rebuilt, superseded, purged atomic.Int64 }

	mu            sync.Mutex
	sent          map[string]map[int64]bool // accepted states, by item and version
	maxAccepted   map[string]int64
	sentIDs       map[string]bool // delivery ids accepted
	olderAccepted int             // a state accepted after a newer one of its item
	problems      []string
}

func (r *stressRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// writer queues new states of random items as site's writer does: a new
// version each, in place of the item's older state where that waits in a
// message never sent (Waiting, Rewrite), in new messages otherwise.
func (r *stressRun) writer(o *Outbox) error {
	for !r.stop.Load() {
		// Between its transactions a writer reads the database (resync
		// builds items): other connections get the write lock then.
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		codes := make([]string, 1+rand.IntN(3))
		for i, j := range rand.Perm(len(r.codes))[:len(codes)] {
			codes[i] = r.codes[j]
		}
		var rewrites, added int64
		err := o.Update(r.ctx, func(tx *Tx) error {
			rewrites, added = 0, 0
			states, err := tx.ItemStates(r.ctx, codes)
			if err != nil {
				return err
			}
			newer := map[string]MessageItem{}
			var put []ItemState
			for _, c := range codes {
				v := states[c].Version + 1
				newer[c] = MessageItem{Code: c, Version: v, Op: "upsert"}
				put = append(put, ItemState{Code: c, Version: v, Hash: "h" + strconv.FormatInt(v, 10)})
			}
			if err := tx.PutItemStates(r.ctx, put); err != nil {
				return err
			}
			waiting, err := tx.Waiting(r.ctx, codes)
			if err != nil {
				return err
			}
			done := map[int64]bool{}
			var fresh []MessageItem
			for _, c := range codes {
				m, ok := waiting[c]
				if !ok {
					fresh = append(fresh, newer[c])
					continue
				}
				if done[m.ID] {
					continue
				}
				done[m.ID] = true
				items := slices.Clone(m.Items)
				for i, it := range items {
					if n, ok := newer[it.Code]; ok {
						items[i] = n
					}
				}
				if err := tx.Rewrite(r.ctx, m.ID, stressMessage(items), time.Now()); err != nil {
					return err
				}
				rewrites++
			}
			if len(fresh) > 0 {
				if _, err := tx.AddMessage(r.ctx, stressMessage(fresh), time.Now()); err != nil {
					return err
				}
				added++
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.counts.rewrites.Add(rewrites)
		r.counts.added.Add(added)
	}
	return nil
}

// daemon claims what is due and "sends" it: it checks each message against
// the file, then accepts it (recording what was sent), or has it refused
// (open to coalescing again) or dead-lettered.
func (r *stressRun) daemon(o, look *Outbox) error {
	for {
		if r.drain.Load() {
			st, err := o.Stats(r.ctx)
			if err != nil {
				return err
			}
			if st.Pending == 0 {
				return nil
			}
		}
		msgs, err := o.Claim(r.ctx, time.Now(), 4)
		if err != nil {
			return err
		}
		r.counts.claims.Add(int64(len(msgs)))
		var accepted []Accepted
		var ids []int64
		for _, m := range msgs {
			ids = append(ids, m.ID)
			if s, err := look.Get(r.ctx, m.ID); err != nil || s.DeliveryID != m.DeliveryID || string(s.Body) != string(m.Body) {
				r.problem("message %d handed out as %q, stored as %q (%v)", m.ID, m.Body, s.Body, err)
			}
			if string(m.Body) != string(stressBody(m.DeliveryID, m.Items)) {
				r.problem("message %d: body %q does not match its items %v", m.ID, m.Body, m.Items)
			}
			switch p := rand.IntN(100); {
			case !r.drain.Load() && p < 15:
				if err := o.MarkRefused(r.ctx, m.ID, 503, "refused", time.Now()); err != nil {
					return err
				}
				r.counts.refused.Add(1)
			case !r.drain.Load() && r.dead && p < 25:
				if err := o.MarkDead(r.ctx, m.ID, 422, "unprocessable", time.Now()); err != nil {
					return err
				}
				r.counts.deadened.Add(1)
			default:
				r.accept(m)
				accepted = append(accepted, Accepted{ID: m.ID, Status: 200, DeliveryID: m.DeliveryID})
			}
		}
		if len(accepted) > 0 {
			skipped, err := o.MarkDeliveredBatch(r.ctx, accepted, time.Now())
			if err != nil {
				return err
			}
			if len(skipped) > 0 {
				r.problem("accepted messages %v could not be recorded delivered", skipped)
			}
		}
		o.Release(ids...)
		if len(msgs) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// accept records m as accepted by the receiver, which keeps the newest
// version of each item.
func (r *stressRun) accept(m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts.sent.Add(1)
	r.sentIDs[m.DeliveryID] = true
	for _, it := range m.Items {
		if r.sent[it.Code] == nil {
			r.sent[it.Code] = map[int64]bool{}
		}
		r.sent[it.Code][it.Version] = true
		if it.Version < r.maxAccepted[it.Code] {
			r.olderAccepted++
		}
		r.maxAccepted[it.Code] = max(r.maxAccepted[it.Code], it.Version)
	}
}

// operator retries dead letters (sending what is current of each) and
// purges some, as `erpsync outbox retry` and `purge` do.
func (r *stressRun) operator(o *Outbox) error {
	for !r.stop.Load() {
		time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
		dead, err := o.List(r.ctx, Dead, 10)
		if err != nil {
			return err
		}
		for _, m := range dead {
			if rand.IntN(4) == 0 {
				n, err := o.PurgeDead(r.ctx, []int64{m.ID})
				if err != nil {
					return err
				}
				r.counts.purged.Add(n)
				continue
			}
			superseded, err := o.RetryCurrent(r.ctx, m.ID, time.Now(), func(old Message, superseded map[string]bool) (NewMessage, error) {
				var keep []MessageItem
				for _, it := range old.Items {
					if !superseded[it.Code] {
						keep = append(keep, it)
					}
				}
				return stressMessage(keep), nil
			})
			var se *SupersededError
			switch {
			case errors.As(err, &se):
				r.counts.superseded.Add(1)
			case errors.Is(err, ErrNotFound), errors.Is(err, ErrWrongState):
				// purged or delivered meanwhile
			case err != nil:
				return err
			case len(superseded) > 0:
				r.counts.rebuilt.Add(1)
			default:
				r.counts.retried.Add(1)
			}
		}
	}
	return nil
}

// TestWritersOnOneFile: the daemon claims and delivers while other
// connections to the same file queue newer states (coalescing into waiting
// messages), and, with dead letters, retry and purge them. No message is
// handed out with a body other than the one stored when its attempt begins,
// no item state is recorded delivered that was not sent, no state is
// accepted after a newer one of its item, and none is lost: at the end every
// item's last state was delivered, or went dead and is marked for sending
// again.
func TestWritersOnOneFile(t *testing.T) {
	runFor := 4 * time.Second
	if testing.Short() {
		runFor = time.Second
	}
	tests := []struct {
		name string
		dead bool
	}{
		{"claim against coalescing", false},
		{"with dead letters retried and purged", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			daemon, writer, look, operator := openTest(t, path), openTest(t, path), openTest(t, path), openTest(t, path)
			r := &stressRun{ctx: context.Background(), dead: tc.dead,
				sent: map[string]map[int64]bool{}, maxAccepted: map[string]int64{}, sentIDs: map[string]bool{}}
			for i := range 12 {
				r.codes = append(r.codes, fmt.Sprintf("I%02d", i))
			}
			errs := make(chan error, 4)
			var wg sync.WaitGroup
			wg.Go(func() { errs <- r.writer(writer) })
			if tc.dead {
				wg.Go(func() { errs <- r.operator(operator) })
			}
			daemonDone := make(chan error, 1)
			go func() { daemonDone <- r.daemon(daemon, look) }()
			time.Sleep(runFor)
			r.stop.Store(true)
			wg.Wait()
			r.drain.Store(true)
			select {
			case err := <-daemonDone:
				must(t, err)
			case <-time.After(60 * time.Second):
				t.Fatal("the daemon did not drain the outbox within 60s")
			}
			close(errs)
			for err := range errs {
				must(t, err)
			}

			c := &r.counts
			t.Logf("claimed %d, accepted %d, rewrites %d, added %d, refused %d, dead %d, retried %d, retried without superseded items %d, refused as superseded %d, purged %d",
				c.claims.Load(), c.sent.Load(), c.rewrites.Load(), c.added.Load(), c.refused.Load(), c.deadened.Load(),
				c.retried.Load(), c.rebuilt.Load(), c.superseded.Load(), c.purged.Load())
			for _, p := range r.problems {
				t.Error(p)
			}
			if r.olderAccepted > 0 {
				t.Errorf("%d states accepted after a newer state of their item", r.olderAccepted)
			}
			if c.rewrites.Load() == 0 || c.claims.Load() == 0 {
				t.Fatal("the run exercised nothing: no rewrites or no claims")
			}
			lost := 0
			for _, code := range r.codes {
				st, ok, err := look.ItemState(r.ctx, code)
				must(t, err)
				if !ok {
					continue
				}
				if st.DeliveredVersion > 0 && !r.sent[code][st.DeliveredVersion] {
					t.Errorf("item %s: version %d recorded delivered but never sent", code, st.DeliveredVersion)
				}
				if st.Hash != "" && (st.DeliveredVersion != st.Version || r.maxAccepted[code] != st.Version) {
					lost++
					t.Errorf("item %s: last state %d (hash %q), recorded delivered %d, receiver has %d: lost",
						code, st.Version, st.Hash, st.DeliveredVersion, r.maxAccepted[code])
				}
			}
			delivered, err := look.List(r.ctx, Delivered, 0)
			must(t, err)
			for _, m := range delivered {
				if !r.sentIDs[m.DeliveryID] {
					t.Errorf("message %d recorded delivered as %s, which was never sent", m.ID, m.DeliveryID)
				}
			}
			t.Logf("lost %d, older after newer %d", lost, r.olderAccepted)
		})
	}
}

// lockHolder, in a child process, takes the daemon lock of the outbox at
// path, says "locked", and waits to be killed.
func lockHolder(path string) error {
	o, err := Open(context.Background(), path)
	if err != nil {
		return err
	}
	if err := o.LockForDaemon(); err != nil {
		return err
	}
	fmt.Println("locked")
	time.Sleep(2 * time.Minute) // never outlive a parent that died
	return errors.New("not killed in time")
}

// TestLockForDaemon: one daemon lock per outbox file, across processes and
// within one; the kernel frees it when its holder dies, even of SIGKILL;
// the operator's commands open and write the file while it is held.
func TestLockForDaemon(t *testing.T) {
	ctx := context.Background()
	t.Run("another process", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		openTest(t, path) // create it first
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"=lock", helperPathEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		defer cmd.Process.Kill()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "locked\n" {
			t.Fatalf("child said %q (%v): %s", line, err, stderr.String())
		}

		o := openTest(t, path)
		err = o.LockForDaemon()
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("LockForDaemon while another process holds it: %v", err)
		}
		for _, want := range []string{"another erpsync run is using outbox " + path, fmt.Sprintf("process %d", cmd.Process.Pid),
			"systemctl stop erpsync", "outbox.path"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		// The operator's commands work meanwhile.
		add(t, o, t0, msg("m1", 1, "A"))
		if s := stats(t, o); s.Pending != 1 {
			t.Errorf("stats while locked: %+v", s)
		}

		must(t, cmd.Process.Signal(syscall.SIGKILL))
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		if err := o.LockForDaemon(); err != nil {
			t.Fatalf("LockForDaemon after the holder was killed: %v", err)
		}
	})
	t.Run("this process", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		first, err := Open(ctx, path)
		must(t, err)
		must(t, first.LockForDaemon())
		must(t, first.LockForDaemon()) // again: nothing to do
		second := openTest(t, path)
		if err := second.LockForDaemon(); !errors.Is(err, ErrLocked) {
			t.Fatalf("second LockForDaemon: %v", err)
		}
		must(t, first.Close())
		must(t, second.LockForDaemon())
	})
	t.Run("directory not writable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes anywhere")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "outbox.db")
		o := openTest(t, path)
		must(t, os.Chmod(dir, 0o500))
		defer os.Chmod(dir, 0o700)
		if err := o.LockForDaemon(); err == nil || !strings.Contains(err.Error(), path) || errors.Is(err, ErrLocked) {
			t.Errorf("LockForDaemon in a read-only directory: %v", err)
		}
	})
}

// TestIsBusy: a write that another connection's write lock kept out past
// the busy timeout is busy; other failures are not.
func TestIsBusy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	holder, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK")
	waiter, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(50)")
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	_, busy := waiter.ExecContext(ctx, "BEGIN IMMEDIATE")
	_, syntax := waiter.ExecContext(ctx, "SELEC 1")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{name: "the write lock held", err: fmt.Errorf("queue: %w", busy), want: true},
		{name: "a syntax error", err: syntax, want: false},
		{name: "not SQLite's", err: errors.New("database is locked"), want: false},
		{name: "none", err: nil, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsBusy(tc.err); got != tc.want {
				t.Errorf("IsBusy(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
