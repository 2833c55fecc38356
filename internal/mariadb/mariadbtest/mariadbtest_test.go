package mariadbtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/internal/mariadb"
)

func TestMain(m *testing.M) { os.Exit(RunTests(m)) }

func openTest(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryString(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func TestNewDatabase(t *testing.T) {
	var names []string
	for i := 0; i < 2; i++ {
		t.Run("sub", func(t *testing.T) {
			dsn := NewDatabase(t)
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, cfg.DBName)
			db := openTest(t, dsn)
			if got := queryString(t, db, "SELECT DATABASE()"); got != cfg.DBName {
				t.Errorf("DATABASE() = %q, want %q", got, cfg.DBName)
			}
			if got := queryString(t, db, "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()"); got != "utf8mb4_unicode_ci" {
				t.Errorf("collation %q", got)
			}
			if _, err := db.Exec("CREATE TABLE x (id int)"); err != nil {
				t.Error(err)
			}
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("database names %q not unique", names)
	}
	if len(names[0]) > 64 || !strings.HasPrefix(names[0], "t_testnewdatabase_sub") {
		t.Errorf("name %q", names[0])
	}
	root := openTest(t, shared.cfg.FormatDSN())
	for _, n := range names {
		var c int
		if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", n).Scan(&c); err != nil {
			t.Fatal(err)
		}
		if c != 0 {
			t.Errorf("database %s not dropped by cleanup", n)
		}
	}
}

// RestartShared and KillShared take the shared server down (cleanly, or by
// SIGKILL) and bring it back on the same port: the pid changes, committed
// rows survive, and a pool opened before reconnects.
func TestRestartAndKillShared(t *testing.T) {
	if os.Getenv(EnvTestDSN) != "" {
		t.Skipf("the test database is the server $%s names, which this test must not stop", EnvTestDSN)
	}
	tests := []struct {
		name      string
		bounce    func(context.Context, time.Duration) error
		shutdowns int // clean shutdowns the server's log gains
	}{
		{"RestartShared", RestartShared, 1},
		{"KillShared", KillShared, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, NewDatabase(t))
			if _, err := db.Exec("CREATE TABLE x (id int PRIMARY KEY) ENGINE=InnoDB"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO x VALUES (1), (2), (3)"); err != nil {
				t.Fatal(err)
			}
			srv := shared.srv
			logPath := filepath.Join(srv.Dir, "mariadbd.log")
			shutdowns := func() int {
				b, err := os.ReadFile(logPath)
				if err != nil {
					t.Fatal(err)
				}
				return strings.Count(string(b), ": Shutdown complete\n") // mariadbd's last line on SIGTERM
			}
			old, before := srv.Pid(), shutdowns()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := tc.bounce(ctx, 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if pid := srv.Pid(); pid == 0 || pid == old {
				t.Errorf("pid %d after %s, was %d: want a new server process", pid, tc.name, old)
			}
			if got := shutdowns() - before; got != tc.shutdowns {
				t.Errorf("the server log gained %d clean shutdowns, want %d", got, tc.shutdowns)
			}
			var n int
			for i := 0; ; i++ { // the pool's connections died with the server
				err := db.QueryRow("SELECT COUNT(*) FROM x").Scan(&n)
				if err == nil {
					break
				}
				if i == 20 {
					t.Fatalf("query after %s: %v", tc.name, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if n != 3 {
				t.Errorf("%d rows after %s, want the 3 committed", n, tc.name)
			}
		})
	}
}

// NewDatabase with no server fails the test instead of skipping it.
func TestNewDatabaseWithoutServerFails(t *testing.T) {
	saved := shared
	defer func() { shared = saved }()
	shared = &testServer{}
	shared.once.Do(func() { shared.err = fmt.Errorf("no MariaDB server for tests: %w", mariadb.ErrNotFound) })
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() { // t.Fatal calls runtime.Goexit
		defer close(done)
		NewDatabase(ft)
	}()
	<-done
	if !ft.failed || ft.skipped {
		t.Fatalf("failed=%v skipped=%v, want a failure", ft.failed, ft.skipped)
	}
	if !strings.Contains(ft.msg, "apt-get install mariadb-server") {
		t.Errorf("message lacks the install hint: %q", ft.msg)
	}
}

type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.failed, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any)              { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Skipf(format string, a ...any) { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) SkipNow()                      { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Cleanup(func())                {}
func (f *fakeTB) Name() string                  { return "fake" }
