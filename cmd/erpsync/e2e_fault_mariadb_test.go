package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// TestFaultMariaDB takes the database server away under the agent: stopped
// cleanly and restarted (a service restart) in the middle of a bulk change,
// killed with SIGKILL (a crash) in the middle of the initial sync's read of a
// large page, and killed in the middle of a bulk change. The agent rides
// each outage out with backoff, logs it, and leaves no gap.
//
// Every database of the test binary is on the server these cases stop, so
// neither they nor their subtests run in parallel with anything (the tests
// that call t.Parallel wait until every test that does not has finished).
func TestFaultMariaDB(t *testing.T) {
	if os.Getenv(mariadbtest.EnvTestDSN) != "" {
		t.Skipf("the test database is the server $%s names, which this test must not stop", mariadbtest.EnvTestDSN)
	}
	ctx := context.Background()
	const down = time.Second // how long a killed server stays down before it starts again
	tests := []struct {
		name string
		opts faultOptions
		// change makes the case's change and takes the server away in its
		// middle; it returns how many items it changed and a note.
		change func(t *testing.T, f *faultRun) (int, string)
		// outages is how often the outage may be logged: a crash while a
		// page is read can fail the read, and then the retry, once more.
		outages int
	}{
		{
			name: "restart (SIGTERM) mid-bulk",
			change: func(t *testing.T, f *faultRun) (int, string) {
				f.retryDB("seed", func() error { return f.Site.Seed(ctx, faultItems) })
				codes := f.codes()
				f.bulkUpdate(1, codes, 200, 20*time.Millisecond)
				start := time.Now()
				if err := mariadbtest.RestartShared(ctx, 3*time.Second); err != nil {
					t.Fatalf("restart MariaDB: %v", err)
				}
				downFor := time.Since(start)
				f.bulkUpdate(2, codes, 200, 20*time.Millisecond)
				f.deleteSome()
				return len(codes), fmt.Sprintf("db_unreachable_for=%s", downFor.Round(10*time.Millisecond))
			},
			outages: 1,
		},
		{
			// 3000 items read in pages of 1000: the server dies right after
			// the first page is stored, while the second is being read
			// (its rows fetched, the items built, or the outbox written).
			// The initial sync then resumes after the first page.
			name: "SIGKILL mid-page",
			opts: faultOptions{items: 3000, pageSize: 1000},
			change: func(t *testing.T, f *faultRun) (int, string) {
				const progress = `msg="initial sync progress"`
				deadline := time.Now().Add(60 * time.Second)
				for strings.Count(f.Log(), progress) == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the initial sync stored no page within 60s")
					}
					time.Sleep(2 * time.Millisecond)
				}
				pages := strings.Count(f.Log(), progress)
				if err := mariadbtest.KillShared(ctx, down); err != nil {
					t.Fatalf("kill and restart MariaDB: %v", err)
				}
				if pages != 1 {
					t.Fatalf("%d pages stored when the server was killed, want 1: the kill came late", pages)
				}
				codes := f.codes()
				f.bulkUpdate(1, codes, 500, 20*time.Millisecond)
				f.deleteSome()
				return len(codes), fmt.Sprintf("pages_stored_at_kill=%d/3", pages)
			},
			outages: 2,
		},
		{
			// The server dies while the test's UPDATEs of 100 items each go
			// in: some fail (and are made again once it is back), and the
			// agent's polls die with their connections.
			name: "SIGKILL mid-bulk",
			change: func(t *testing.T, f *faultRun) (int, string) {
				f.retryDB("seed", func() error { return f.Site.Seed(ctx, faultItems) })
				codes := f.codes()
				// The update takes half a second at least (20 statements
				// 20ms apart); the kill comes before that.
				killAfter := 50*time.Millisecond + rand.N(300*time.Millisecond)
				killed := make(chan error, 1)
				time.AfterFunc(killAfter, func() { killed <- mariadbtest.KillShared(ctx, down) })
				retries := f.dbRetries.Load()
				start := time.Now()
				f.bulkUpdate(1, codes, 100, 20*time.Millisecond)
				took := time.Since(start)
				if err := <-killed; err != nil {
					t.Fatalf("kill and restart MariaDB: %v", err)
				}
				failed := f.dbRetries.Load() - retries
				if failed == 0 {
					t.Fatalf("the bulk change (%s) met no failure: the kill %s after its start came after it", took.Round(time.Millisecond), killAfter.Round(time.Millisecond))
				}
				f.bulkUpdate(2, codes, 200, 20*time.Millisecond)
				f.deleteSome()
				return len(codes), fmt.Sprintf("killed_after=%s bulk_statements_retried=%d", killAfter.Round(time.Millisecond), failed)
			},
			outages: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultRun(t, tc.opts)
			f.Start()
			var note string
			fig := f.measure(func() int {
				n, s := tc.change(t, f)
				note = s
				return n
			}, nil, func() {})
			f.drained()
			f.AssertMatchesDatabase()
			f.waitLog("detection recovered", 30*time.Second) // at the end of the first whole poll after the outage
			f.Stop()
			log := f.Log()
			outages := strings.Count(log, "detection failed; retrying with backoff")
			errorLines := strings.Count(log, "level=ERROR")
			fig.note = fmt.Sprintf("%s outage_logged=%d error_lines=%d", note, outages, errorLines)
			f.report(tc.name, fig)
			t.Logf("the outage as the sync log tells it:\n%s", grepLines(log, "detection", 4))
			if outages < 1 || outages > tc.outages {
				t.Errorf("the database outage was logged %d times, want 1..%d:\n%s", outages, tc.outages, grepLines(log, "detection failed", 5))
			}
			if errorLines > 2*tc.outages {
				t.Errorf("%d ERROR lines for one database outage:\n%s", errorLines, grepLines(log, "level=ERROR", 10))
			}
			if c := strings.Count(log, "initial sync done"); c != 1 {
				t.Errorf("the initial sync finished %d times, want once", c)
			}
			// Killed during a page, the initial sync starts again after the
			// last page stored: the first, or the second when the kill
			// came once the second page had been read whole.
			if starts := grepLines(log, `msg="initial sync: sending every item once"`, 3); tc.opts.items > 0 &&
				!strings.Contains(starts, "resume_after=ITEM-01000") && !strings.Contains(starts, "resume_after=ITEM-02000") {
				t.Errorf("the initial sync did not resume after a page it had stored:\n%s", grepLines(log, "initial sync", 10))
			}
		})
	}
}
