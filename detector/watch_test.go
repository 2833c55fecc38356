package detector_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// watcher runs detector.Watch on dir until the test ends and counts wake-ups.
type watcher struct {
	wakes atomic.Int64
	woken chan time.Time // one value per wake-up (buffered; extra values are dropped)
	done  chan error     // Watch's result
	stop  context.CancelFunc
}

func startWatch(t *testing.T, dir string, debounce time.Duration) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{woken: make(chan time.Time, 1000), done: make(chan error, 1), stop: cancel}
	started := make(chan struct{})
	go func() {
		close(started)
		w.done <- detector.Watch(ctx, dir, debounce, func() {
			w.wakes.Add(1)
			select {
			case w.woken <- time.Now():
			default:
			}
		})
	}()
	<-started
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("Watch returned %v after its context ended; want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return within 5s of its context ending")
		}
	})
	// fsnotify has no "ready" signal: give Watch a moment to add its watch.
	time.Sleep(50 * time.Millisecond)
	return w
}

// waitWake waits up to d for a wake-up and returns when it came.
func (w *watcher) waitWake(t *testing.T, d time.Duration, what string) time.Time {
	t.Helper()
	select {
	case at := <-w.woken:
		return at
	case err := <-w.done:
		t.Fatalf("%s: Watch returned early: %v", what, err)
	case <-time.After(d):
		t.Fatalf("%s: no wake-up within %v", what, d)
	}
	return time.Time{}
}

// quiet asserts no wake-up comes within d.
func (w *watcher) quiet(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-w.woken:
		t.Fatalf("%s: unexpected wake-up", what)
	case <-time.After(d):
	}
}

// drain forgets wake-ups so far and returns how many there were in total.
func (w *watcher) drain() int64 {
	for {
		select {
		case <-w.woken:
		default:
			return w.wakes.Load()
		}
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWatchWakesOnBinlogWrites(t *testing.T) {
	dir := t.TempDir()
	binlog := filepath.Join(dir, "mariadb-bin.000001")
	appendFile(t, binlog, "\xfebin")
	appendFile(t, filepath.Join(dir, "mariadb-bin.index"), "./mariadb-bin.000001\n")
	w := startWatch(t, dir, 5*time.Millisecond)

	start := time.Now()
	appendFile(t, binlog, "commit 1")
	at := w.waitWake(t, 2*time.Second, "a write to the binary log")
	if d := at.Sub(start); d > 500*time.Millisecond {
		t.Errorf("woken %v after the write; want milliseconds", d)
	}
	w.quiet(t, 100*time.Millisecond, "after one write")

	// Files that share the directory but are not the binary log are ignored.
	for _, name := range []string{"ib_logfile0", "ibdata1", "aria_log.00000001", "mariadb-bin.index", "ddl_recovery.log", "t.ibd"} {
		appendFile(t, filepath.Join(dir, name), "background write")
	}
	w.quiet(t, 100*time.Millisecond, "writes to files that are not binary logs")

	// Rotation: the server creates the next file and writes there.
	next := filepath.Join(dir, "mariadb-bin.000002")
	appendFile(t, next, "\xfebin")
	w.waitWake(t, 2*time.Second, "the next binary log file created")
	w.drain()
	appendFile(t, next, "commit 2")
	w.waitWake(t, 2*time.Second, "a write to the rotated binary log")
	// And the old file can go (PURGE BINARY LOGS) without ending the watch.
	if err := os.Remove(binlog); err != nil {
		t.Fatal(err)
	}
	w.quiet(t, 100*time.Millisecond, "a purged binary log")
	appendFile(t, next, "commit 3")
	w.waitWake(t, 2*time.Second, "a write after a purge")
}

func TestWatchDebounce(t *testing.T) {
	dir := t.TempDir()
	binlog := filepath.Join(dir, "binlog.000007")
	appendFile(t, binlog, "")

	t.Run("burst", func(t *testing.T) {
		w := startWatch(t, dir, 20*time.Millisecond)
		f, err := os.OpenFile(binlog, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := range 100 {
			if _, err := f.WriteString("commit " + string(rune('0'+i%10))); err != nil {
				t.Fatal(err)
			}
		}
		w.waitWake(t, 2*time.Second, "a burst of 100 writes")
		time.Sleep(300 * time.Millisecond)
		if n := w.drain(); n > 3 {
			t.Errorf("a burst of 100 back-to-back writes woke the detector %d times; want 1 (at most 3)", n)
		}
	})

	t.Run("steady stream is cut", func(t *testing.T) {
		// Writes every millisecond never leave the directory quiet for the
		// 10ms debounce; wake-ups must still come, at most every 10×debounce.
		const debounce = 10 * time.Millisecond
		w := startWatch(t, dir, debounce)
		f, err := os.OpenFile(binlog, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		start := time.Now()
		var firstWake time.Time
		for time.Since(start) < 500*time.Millisecond {
			if _, err := f.WriteString("x"); err != nil {
				t.Fatal(err)
			}
			if firstWake.IsZero() {
				select {
				case firstWake = <-w.woken:
				default:
				}
			}
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		time.Sleep(100 * time.Millisecond)
		n := w.wakes.Load()
		if firstWake.IsZero() {
			t.Fatalf("no wake-up during %v of continuous writes", elapsed)
		}
		if d := firstWake.Sub(start); d > 10*debounce+200*time.Millisecond {
			t.Errorf("first wake-up %v after continuous writes began; want about %v", d, 10*debounce)
		}
		if max := int64(elapsed/debounce) + 1; n < 2 || n > max {
			t.Errorf("%d wake-ups during %v of writes every 1ms (debounce %v); want between 2 and %d", n, elapsed, debounce, max)
		}
	})

	t.Run("zero debounce wakes on every write", func(t *testing.T) {
		w := startWatch(t, dir, 0)
		for i := range 3 {
			appendFile(t, binlog, "c")
			w.waitWake(t, 2*time.Second, "write "+string(rune('1'+i)))
			time.Sleep(20 * time.Millisecond)
			w.drain()
		}
	})
}

func TestWatchErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mariadb-bin.000001")
	appendFile(t, file, "x")
	missing := filepath.Join(dir, "no-such-dir")
	cases := []struct {
		name, dir string
		want      []string
	}{
		{"missing", missing, []string{missing, "no such directory", "log_bin_basename", `erp.watch = ""`}},
		{"a file", file, []string{file, "not a directory", "log_bin_basename"}},
		{"empty", "", []string{"erp.watch is empty", "log_bin_basename"}},
	}
	if os.Geteuid() != 0 { // root reads any directory
		locked := filepath.Join(dir, "locked")
		if err := os.Mkdir(locked, 0o000); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(locked, 0o700) })
		cases = append(cases, struct {
			name, dir string
			want      []string
		}{"unreadable", locked, []string{locked, "permission denied", "chmod g+rx"}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			err := detector.Watch(ctx, c.dir, 5*time.Millisecond, func() { t.Error("woken") })
			if err == nil {
				t.Fatal("Watch returned nil; want an error at once")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Watch took %v to fail; want at once", d)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestWatchDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "binlog")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- detector.Watch(ctx, dir, 5*time.Millisecond, func() {}) }()
	time.Sleep(50 * time.Millisecond)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "removed") {
			t.Fatalf("Watch returned %v; want an error saying %s was removed", err, dir)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not return after its directory was removed")
	}
}

func TestCheckWatchDir(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"mariadb-bin.000001", "mariadb-bin.000002", "mariadb-bin.index", "ib_logfile0", "aria_log.00000001"} {
		appendFile(t, filepath.Join(dir, name), "x")
	}
	got, err := detector.CheckWatchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "mariadb-bin.000001,mariadb-bin.000002" {
		t.Errorf("CheckWatchDir = %q; want the two binary log files", got)
	}
	for name, want := range map[string]bool{
		"mariadb-bin.000001": true, "binlog.001337": true, "relay-bin.1234567": true, "mysql-bin.index": false,
		"mysql-bin.00001": false, "aria_log.00000001": false, ".000001": false, "ib_logfile0": false, "x.00000a": false,
	} {
		if detector.IsBinlogName(name) != want {
			t.Errorf("IsBinlogName(%q) = %v; want %v", name, !want, want)
		}
	}
}

// binlogDir opens a fresh database on the test server and returns it with the
// directory of the server's binary log (internal/mariadb runs mariadbd with
// --log-bin in <Dir>/binlog).
func binlogDir(t *testing.T) (*sql.DB, string) {
	t.Helper()
	db, err := sql.Open("mysql", mariadbtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var base sql.NullString
	if err := db.QueryRow("SELECT @@log_bin_basename").Scan(&base); err != nil {
		t.Fatal(err)
	}
	if !base.Valid || base.String == "" {
		t.Skip("the test server runs without a binary log (log_bin off)")
	}
	dir := filepath.Dir(base.String)
	if files, err := detector.CheckWatchDir(dir); err != nil {
		t.Skipf("the test server's binary log is not readable here: %v", err)
	} else if len(files) == 0 {
		t.Fatalf("no binary log files in %s", dir)
	}
	if _, err := db.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO t VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	return db, dir
}

func TestWatchMariaDBCommit(t *testing.T) {
	db, dir := binlogDir(t)
	w := startWatch(t, dir, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // let the setup's own commits pass
	w.drain()

	// Nothing committed: no wake-up (an idle server writes no binary log).
	w.quiet(t, 300*time.Millisecond, "an idle server")

	// A read-only statement writes no binary log either.
	var v int
	if err := db.QueryRow("SELECT v FROM t WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	w.quiet(t, 100*time.Millisecond, "a SELECT")

	for i := 1; i <= 3; i++ {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("UPDATE t SET v = ? WHERE id = 1", i); err != nil {
			t.Fatal(err)
		}
		w.quiet(t, 50*time.Millisecond, "an UPDATE not yet committed")
		start := time.Now()
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		at := w.waitWake(t, 2*time.Second, "a committed UPDATE")
		if d := at.Sub(start); d > 250*time.Millisecond {
			t.Errorf("commit %d woke the watcher after %v; want milliseconds", i, d)
		} else {
			t.Logf("commit %d woke the watcher after %v", i, d.Round(10*time.Microsecond))
		}
		// By the time the watcher wakes (after the debounce) the commit is visible.
		if err := db.QueryRow("SELECT v FROM t WHERE id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != i {
			t.Errorf("after the wake-up of commit %d a new session reads v = %d", i, v)
		}
		time.Sleep(50 * time.Millisecond)
		w.drain()
	}
}

func TestWatchMariaDBBurst(t *testing.T) {
	db, dir := binlogDir(t)
	w := startWatch(t, dir, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	before := w.drain()

	const commits = 100
	start := time.Now()
	last, slow := start, 0 // slow: pauses between commits longer than the debounce
	for i := range commits {
		if _, err := db.Exec("UPDATE t SET v = ? WHERE id = 1", i+10); err != nil { // autocommit: one commit each
			t.Fatal(err)
		}
		now := time.Now()
		if now.Sub(last) > 5*time.Millisecond {
			slow++
		}
		last = now
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	n := w.drain() - before
	t.Logf("%d commits in %v woke the watcher %d times", commits, took.Round(time.Millisecond), n)
	if n < 1 {
		t.Fatal("100 commits did not wake the watcher")
	}
	// Commits come faster than the 5ms debounce, so a wake-up covers many:
	// at most one per 10×debounce (50ms) of the burst, plus the last, plus
	// one per pause longer than the debounce (a loaded machine makes some
	// commits slow, and each such pause may rightly end a debounce).
	if limit := int64(took/(50*time.Millisecond)) + 3 + int64(slow); n > limit {
		t.Errorf("%d commits in %v (%d pauses over the debounce) woke the watcher %d times; want at most %d", commits, took, slow, n, limit)
	}
}

func TestWatchEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := detector.Watch(ctx, t.TempDir(), time.Millisecond, func() {}); err != nil {
		t.Fatalf("Watch on an ended context = %v; want nil", err)
	}
}
