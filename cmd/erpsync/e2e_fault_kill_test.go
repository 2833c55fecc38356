package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killRounds is how many times the SIGKILL cases kill a process.
const killRounds = 20

// killItems is how many items the SIGKILL cases change again and again.
const killItems = 1000

// newKillRNG returns the random source of a SIGKILL case, its seed logged
// so that a failing run's moments can be had again (ERPSYNC_FAULT_SEED).
func newKillRNG(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ERPSYNC_FAULT_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		must(t, err)
	}
	t.Logf("random moments from seed %d (ERPSYNC_FAULT_SEED=%d repeats them)", seed, seed)
	return rand.New(rand.NewPCG(seed, 9))
}

// changeUntil changes every item in codes again and again, a round after
// the other, in chunks of 100 with gap between them, until stop is closed;
// it then sends nil, or the first error, on the returned channel.
func (f *faultRun) changeUntil(stop <-chan struct{}, codes []string, gap time.Duration) <-chan error {
	errs := make(chan error, 1)
	go func() {
		for round := 1; ; round++ {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if err := f.bulkUpdateErr(round, codes, 100, gap); err != nil {
				errs <- fmt.Errorf("bulk change, round %d: %w", round, err)
				return
			}
		}
	}()
	return errs
}

// TestFaultSIGKILL kills `erpsync run` with SIGKILL killRounds times at
// random moments while every item is changed again and again (the first
// kills land in the initial sync), restarting it each time.
func TestFaultSIGKILL(t *testing.T) {
	f := newFaultRun(t, faultOptions{items: killItems})
	rng := newKillRNG(t)
	codes := f.codes()
	f.startBinary()
	var kills int
	fig := f.measure(func() int {
		stop := make(chan struct{})
		errs := f.changeUntil(stop, codes, 30*time.Millisecond)
		for ; kills < killRounds; kills++ {
			time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(600*time.Millisecond))))
			f.kill9()
			f.startBinary()
		}
		close(stop)
		must(t, <-errs)
		f.deleteSome()
		return len(codes)
	}, nil, func() {})
	fig.note = fmt.Sprintf("kills=%d", kills)
	f.report(fmt.Sprintf("SIGKILL x%d, bulk change", kills), fig)
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

// TestFaultSIGKILLResync runs `erpsync resync --all` as a process
// killRounds times while the daemon (`erpsync run`) delivers, and kills one
// of them with SIGKILL at a random moment of each: the resync in odd rounds,
// the daemon (restarted at once) in even ones, where the resync must then
// finish on its own. In the second case every item is also changed again
// and again meanwhile, so that the resync reads items the daemon queues a
// newer state of while the resync runs.
func TestFaultSIGKILLResync(t *testing.T) {
	tests := []struct {
		name    string
		changes bool // change every item again and again during the rounds
	}{
		{name: "resync --all"},
		{name: "resync --all during a bulk change", changes: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultRun(t, faultOptions{items: killItems / 2})
			rng := newKillRNG(t)
			codes := f.codes()
			f.startBinary()
			f.waitLog("initial sync done", 60*time.Second)
			f.drained()

			// How long a whole resync takes, for the random moments.
			start := time.Now()
			f.resync(t, 0, func(*exec.Cmd, <-chan struct{}) {})
			whole := time.Since(start)

			// Kills that came after the resync had finished still count as
			// rounds.
			var resyncKills, resyncDoneFirst, daemonKills, daemonKillsAfter int
			fig := f.measure(func() int {
				stop := make(chan struct{})
				errs := make(<-chan error)
				if tc.changes {
					errs = f.changeUntil(stop, codes, 200*time.Millisecond)
				}
				for round := 1; round <= killRounds; round++ {
					at := time.Duration(rng.Int64N(int64(whole)))
					killResync := round%2 == 1
					began := time.Now()
					killed := f.resync(t, round, func(cmd *exec.Cmd, exited <-chan struct{}) {
						time.Sleep(at)
						if killResync {
							cmd.Process.Signal(syscall.SIGKILL) // an error: it has exited and been waited for
							return
						}
						select {
						case <-exited:
							daemonKillsAfter++
						default:
						}
						f.kill9()
						f.startBinary()
					})
					t.Logf("round %d: killed the %s %s after the resync started; the resync ended after %s (killed %v)",
						round, map[bool]string{true: "resync", false: "daemon"}[killResync], at.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), killed)
					switch {
					case killResync && killed:
						resyncKills++
					case killResync:
						resyncDoneFirst++
					default:
						daemonKills++
					}
				}
				if tc.changes {
					close(stop)
					must(t, <-errs)
				}
				f.deleteSome()
				return len(codes)
			}, nil, func() {})
			fig.note = fmt.Sprintf("resync_killed=%d resync_done_before_its_kill=%d daemon_killed=%d (after_the_resync=%d) whole_resync=%s",
				resyncKills, resyncDoneFirst, daemonKills, daemonKillsAfter, whole.Round(10*time.Millisecond))
			f.report(fmt.Sprintf("SIGKILL x%d, %s", killRounds, tc.name), fig)
			f.drained()
			f.AssertMatchesDatabase()
			f.stopBinary()
			if st := f.obStats(); st.Dead != 0 {
				t.Errorf("%d messages dead-lettered", st.Dead)
			}
		})
	}
}

// resync runs `erpsync resync --all` as a process (runResync).
func (f *faultRun) resync(t *testing.T, round int, during func(cmd *exec.Cmd, exited <-chan struct{})) (killed bool) {
	t.Helper()
	return f.runResync(t, fmt.Sprintf("resync round %d", round), during, "--config", f.CfgPath, "--all")
}

// runResync runs `erpsync resync ARGS…` as a process, calls during once it
// has started (exited is closed once the process has ended: during may kill
// it), and waits for it: it must exit 0 unless killed. It reports whether it
// was killed; what it printed goes to the case's outputs, named name.
func (f *faultRun) runResync(t *testing.T, name string, during func(cmd *exec.Cmd, exited <-chan struct{}), args ...string) (killed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, erpsyncBinary(t), append([]string{"resync"}, args...)...)
	cmd.Env = append(os.Environ(), "ERPSYNC_CONFIG=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	must(t, cmd.Start())
	exited, done := make(chan struct{}), make(chan error, 1)
	go func() {
		err := cmd.Wait()
		close(exited)
		done <- err
	}()
	during(cmd, exited)
	err := <-done
	f.output(name+" stdout", out.String())
	f.output(name+" stderr", errOut.String())
	var exit *exec.ExitError
	switch {
	case err == nil:
		if !strings.Contains(out.String(), "queued ") {
			t.Errorf("%s exited 0 without saying what it queued:\n%s%s", name, &out, &errOut)
		}
		return false
	case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL && ctx.Err() == nil:
		return true // by during
	default:
		t.Errorf("%s: %v\n%s%s", name, err, &out, &errOut)
		return false
	}
}
