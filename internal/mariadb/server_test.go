package mariadb

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperProcess())
	}
	os.Exit(m.Run())
}

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start took %v (port %d, dir %s)", time.Since(begin).Round(time.Millisecond), s.Port, s.Dir)
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryString(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	var s string
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// alive reports whether pid names a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces or parentheses, so look after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !alive(pid)
}

func TestStartQueryStop(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := s.Pid()
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	if pid == 0 || !alive(pid) {
		t.Fatalf("pid %d not alive after Start", pid)
	}
	if s.Port == 0 {
		t.Fatal("Port not set")
	}
	if _, err := os.Stat(s.Socket); err != nil {
		t.Errorf("socket: %v", err)
	}
	if filepath.Dir(s.Socket) != s.Dir {
		t.Errorf("socket %s not in %s", s.Socket, s.Dir)
	}

	db := open(t, s.RootDSN(""))
	if v := queryString(t, db, "SELECT VERSION()"); !strings.Contains(v, "MariaDB") {
		t.Errorf("VERSION() = %q", v)
	}
	vars := map[string]string{
		"log_bin":              "1",
		"binlog_format":        "ROW",
		"server_id":            "1",
		"performance_schema":   "0",
		"skip_name_resolve":    "1",
		"bind_address":         "127.0.0.1",
		"port":                 strconv.Itoa(s.Port),
		"socket":               s.Socket,
		"character_set_server": "utf8mb4",
		"collation_server":     "utf8mb4_unicode_ci",
	}
	for name, want := range vars {
		var got string
		if err := db.QueryRow("SELECT @@GLOBAL." + name).Scan(&got); err != nil {
			t.Errorf("%s: %v", name, err)
		} else if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := queryString(t, db, "SELECT @@collation_connection"); got != "utf8mb4_unicode_ci" {
		t.Errorf("collation_connection = %q", got)
	}
	if b := queryString(t, db, "SELECT @@log_bin_basename"); !strings.HasPrefix(b, s.Dir+"/") {
		t.Errorf("log_bin_basename %q not in %s", b, s.Dir)
	}
	db.Close()

	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	if alive(pid) {
		t.Errorf("mariadbd pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s still there after Stop (err %v)", s.Dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.Restart(ctx); err == nil {
		t.Error("Restart after Stop succeeded")
	}
	if s.Pid() != 0 {
		t.Error("Pid after Stop")
	}
}

// syncBuffer is a bytes.Buffer safe for the log-copying goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRestartAndKillKeepData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logBuf := &syncBuffer{}
	s := startServer(t, Options{Dir: dir, Log: logBuf})
	port := s.Port
	db := open(t, s.RootDSN(""))
	for _, q := range []string{
		"CREATE DATABASE keep",
		"CREATE TABLE keep.t (id int primary key, v varchar(20)) ENGINE=InnoDB",
		"INSERT INTO keep.t VALUES (1, 'before restart')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	steps := []struct {
		name  string
		fault func() error
		row   string
	}{
		{"restart", func() error { return s.Restart(ctx) }, "after restart"},
		{"kill+restart", func() error {
			pid := s.Pid()
			if err := s.Kill(); err != nil {
				return err
			}
			if alive(pid) {
				return fmt.Errorf("pid %d alive after Kill", pid)
			}
			if err := db.PingContext(ctx); err == nil {
				return errors.New("ping succeeded while killed")
			}
			return s.Restart(ctx)
		}, "after kill"},
	}
	want := []string{"before restart"}
	for i, st := range steps {
		oldPid := s.Pid()
		if err := st.fault(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if s.Port != port {
			t.Fatalf("%s: port changed %d → %d", st.name, port, s.Port)
		}
		if s.Pid() == oldPid || !alive(s.Pid()) {
			t.Fatalf("%s: pid %d → %d", st.name, oldPid, s.Pid())
		}
		db.SetMaxIdleConns(0) // drop connections to the old process
		db.SetMaxIdleConns(2)
		var got []string
		rows, err := db.Query("SELECT v FROM keep.t ORDER BY id")
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for rows.Next() {
			var v string
			rows.Scan(&v)
			got = append(got, v)
		}
		rows.Close()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%s: rows %q, want %q", st.name, got, want)
		}
		if _, err := db.Exec("INSERT INTO keep.t VALUES (?, ?)", i+2, st.row); err != nil {
			t.Fatalf("%s: insert: %v", st.name, err)
		}
		want = append(want, st.row)
	}

	pid := s.Pid()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("pid %d alive after Stop", pid)
	}
	// A caller's Dir is kept, with the data and the binary log in it.
	for _, p := range []string{"data/keep/t.ibd", "binlog/mariadb-bin.index"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("after Stop: %v", err)
		}
	}
	if !strings.Contains(logBuf.String(), "ready for connections") {
		t.Errorf("Options.Log did not receive the server log; got %d bytes", len(logBuf.String()))
	}

	// Start on an existing Dir reuses the data (no mariadb-install-db).
	s2 := startServer(t, Options{Dir: dir})
	db2 := open(t, s2.RootDSN("keep"))
	if n := queryString(t, db2, "SELECT COUNT(*) FROM t"); n != "3" {
		t.Errorf("rows after Start on existing Dir = %s, want 3", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "mariadbd.log")); err != nil {
		t.Errorf("log file with Log=nil: %v", err)
	}
}

func TestStartCanceledLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "srv")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s, err := Start(ctx, Options{Dir: dir})
	if err == nil {
		s.Stop()
		t.Skip("server started within 300ms; nothing to check") // cannot provoke the timeout on this machine
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	time.Sleep(100 * time.Millisecond)
	if pids := processesMentioning(dir); len(pids) > 0 {
		t.Errorf("processes still running for %s: %v", dir, pids)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// processesMentioning returns live pids whose command line contains s.
func processesMentioning(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestPortInUse(t *testing.T) {
	s := startServer(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s2, err := Start(ctx, Options{Port: s.Port})
	if err == nil {
		s2.Stop()
		t.Fatal("second server on the same port started")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("err = %v, want port in use", err)
	}
}

func TestFindBinaryHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tests := []struct {
		name string
		dirs []string
		ok   bool
	}{
		{"mariadbd", []string{t.TempDir()}, false},
		{"mariadb-install-db", nil, false},
		{"mariadbd", serverDirs(), true},
	}
	for _, tc := range tests {
		p, err := findBinary(tc.name, tc.dirs)
		if tc.ok {
			if err != nil {
				t.Errorf("%s in %v: %v", tc.name, tc.dirs, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s in %v found %s", tc.name, tc.dirs, p)
			continue
		}
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "apt-get install mariadb-server") || !strings.Contains(err.Error(), "make test") {
			t.Errorf("error lacks the install hint: %v", err)
		}
	}
}

// The server must die when the Go process that started it dies without calling Stop.
const helperEnv = "ERPSYNC_MARIADB_TEST_HELPER_DIR"

func helperProcess() int {
	s, err := Start(context.Background(), Options{Dir: os.Getenv(helperEnv)})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("pid", s.Pid())
	time.Sleep(time.Minute) // killed by the test long before
	return 0
}

func TestServerDiesWithParent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "pid %d", &pid); err != nil || pid == 0 {
		t.Fatalf("helper said %q", line)
	}
	if !alive(pid) {
		t.Fatalf("mariadbd %d not running", pid)
	}
	cmd.Process.Kill() // SIGKILL: no deferred Stop runs in the helper
	cmd.Wait()
	if !waitGone(pid, 10*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("mariadbd %d survived its parent", pid)
	}
}

// BenchmarkStart measures Start (fresh data directory: mariadb-install-db + mariadbd until ready) and Stop:
//
//	go test -run '^$' -bench Start -benchtime 3x ./internal/mariadb
func BenchmarkStart(b *testing.B) {
	var stop time.Duration
	for range b.N {
		s, err := Start(context.Background(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		begin := time.Now()
		if err := s.Stop(); err != nil {
			b.Fatal(err)
		}
		stop += time.Since(begin)
		b.StartTimer()
	}
	b.ReportMetric(float64(stop.Milliseconds())/float64(b.N), "stop-ms/op")
}
