// Package mariadbtest gives tests a real MariaDB: one server per test binary
// (RunTests, from TestMain) and a fresh database per test (NewDatabase). It
// imports testing, so only tests import it.
package mariadbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/internal/mariadb"
)

// EnvTestDSN names the environment variable that makes RunTests use an already running server instead of
// starting one: a root (or otherwise privileged) go-sql-driver DSN without a database name, e.g.
// "root@tcp(127.0.0.1:3306)/".
const EnvTestDSN = "ERPSYNC_TEST_MARIADB_DSN"

// testServer is what RunTests hands to NewDatabase. The server starts on
// the first NewDatabase, so that the tests of a package that need no
// database never wait for one.
type testServer struct {
	once sync.Once
	cfg  *mysql.Config   // root, no database
	db   *sql.DB         // root pool, for CREATE/DROP DATABASE
	srv  *mariadb.Server // the server started; nil when $ERPSYNC_TEST_MARIADB_DSN named one
	err  error           // why there is no server, when there is none
}

// shared is set by RunTests before the tests run and only read afterwards. TestMain and the test functions
// of a package can share state only through the package, and testing.TB cannot carry a value, so this one
// variable is how NewDatabase finds the server. It is written once per test binary, before m.Run starts any
// test goroutine, so reads need no lock; what it points at is set up once, by start.
var shared *testServer

// RunTests is for TestMain: it runs the tests with one server for the whole test binary (or the one named
// by $ERPSYNC_TEST_MARIADB_DSN), started by the first NewDatabase, then stops it and returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(mariadbtest.RunTests(m)) }
//
// When no server can be had the tests still run, and every NewDatabase call fails its test with the reason.
func RunTests(m interface{ Run() int }) int {
	ts := &testServer{}
	shared = ts

	code := m.Run()

	if ts.db != nil {
		ts.db.Close()
	}
	if ts.srv != nil {
		if err := ts.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "mariadbtest.RunTests: stopping the server:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// start starts the server, or connects to the one $ERPSYNC_TEST_MARIADB_DSN names, once.
func (ts *testServer) start() error {
	ts.once.Do(func() {
		ts.cfg, ts.srv, ts.err = testServerConfig()
		if ts.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			ts.db, ts.err = mariadb.Connect(ctx, ts.cfg.FormatDSN())
			cancel()
		}
		if ts.err != nil {
			ts.err = fmt.Errorf("no MariaDB server for tests: %w\n(set %s to a root DSN without database name to use a running server, "+
				"or install Debian's mariadb-server (apt-get install mariadb-server) / run `make test`)", ts.err, EnvTestDSN)
		}
	})
	return ts.err
}

func testServerConfig() (*mysql.Config, *mariadb.Server, error) {
	if dsn := os.Getenv(EnvTestDSN); dsn != "" {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("$%s: %w", EnvTestDSN, err)
		}
		if cfg.DBName != "" {
			return nil, nil, fmt.Errorf("$%s names database %q; give a DSN without database name", EnvTestDSN, cfg.DBName)
		}
		return cfg, nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := mariadb.Start(ctx, mariadb.Options{})
	if err != nil {
		return nil, nil, err
	}
	cfg, err := mysql.ParseDSN(srv.RootDSN(""))
	if err != nil {
		srv.Stop()
		return nil, nil, err
	}
	return cfg, srv, nil
}

// NewDatabase creates a new, uniquely named database (utf8mb4_unicode_ci) on the server of RunTests,
// drops it when the test ends (t.Cleanup) and returns a root DSN for it. It fails the test (never skips)
// when there is no server.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ts := shared
	if ts == nil {
		t.Fatal("mariadbtest.NewDatabase: no test server; call it from TestMain: func TestMain(m *testing.M) { os.Exit(mariadbtest.RunTests(m)) }")
	}
	if err := ts.start(); err != nil {
		t.Fatalf("mariadbtest.NewDatabase: %v", err)
	}
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ts.db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("mariadbtest.NewDatabase: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := ts.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("mariadbtest.NewDatabase: dropping %s: %v", name, err)
		}
	})
	cfg := ts.cfg.Clone()
	cfg.DBName = name
	return cfg.FormatDSN()
}

// databaseName makes "t_<test name>_<random>", at most 64 characters of [a-z0-9_].
func databaseName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	underscore := true
	for _, r := range strings.ToLower(testName) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
		if b.Len() >= 44 {
			break
		}
	}
	name := strings.TrimRight(b.String(), "_")
	var rnd [6]byte
	rand.Read(rnd[:])
	return name + "_" + hex.EncodeToString(rnd[:])
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// RestartShared stops the server RunTests started (SIGTERM, as a service restart does), keeps it down for
// down, then starts it again on the same port with the same data and waits until it accepts connections:
// for tests of how a client rides out a database restart. Every database of the test binary is
// unreachable meanwhile. It fails when RunTests did not start the server (none, or
// $ERPSYNC_TEST_MARIADB_DSN named one).
func RestartShared(ctx context.Context, down time.Duration) error {
	if shared == nil || shared.start() != nil || shared.srv == nil {
		return errors.New("mariadbtest.RestartShared: no server started by RunTests")
	}
	s := shared.srv
	if err := s.Terminate(); err != nil {
		return err
	}
	time.Sleep(down)
	return s.Restart(ctx)
}

// KillShared kills the server RunTests started with SIGKILL (a crash: no
// clean shutdown, InnoDB recovers from its log on the next start), keeps it
// down for down, then starts it again on the same port with the same data and
// waits until it accepts connections: for tests of how a client rides out a
// database crash. Every database of the test binary is unreachable meanwhile,
// so no test may run beside one that calls it. It fails when RunTests did not
// start the server (none, or $ERPSYNC_TEST_MARIADB_DSN named one).
func KillShared(ctx context.Context, down time.Duration) error {
	if shared == nil || shared.start() != nil || shared.srv == nil {
		return errors.New("mariadbtest.KillShared: no server started by RunTests")
	}
	s := shared.srv
	if err := s.Kill(); err != nil {
		return err
	}
	time.Sleep(down)
	return s.Restart(ctx)
}

// NewServer starts a MariaDB server of the test's own with opts (a server whose clock libfaketime moves,
// say), creates a database on it and returns a root DSN for that database. The server stops when the test
// ends. Prefer NewDatabase: a server costs seconds to start.
func NewServer(t testing.TB, opts mariadb.Options) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := mariadb.Start(ctx, opts)
	if err != nil {
		t.Fatalf("mariadbtest.NewServer: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("mariadbtest.NewServer: stopping the server: %v", err)
		}
	})
	db, err := mariadb.Connect(ctx, srv.RootDSN(""))
	if err != nil {
		t.Fatalf("mariadbtest.NewServer: %v", err)
	}
	defer db.Close()
	name := databaseName(t.Name())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("mariadbtest.NewServer: %v", err)
	}
	return srv.RootDSN(name)
}

// FakeTimeEnv is the environment that starts mariadbd's clock at start (UTC) with libfaketime, from where
// it runs on at normal speed. The test fails when libfaketime is not installed (Debian's libfaketime;
// `make test` installs it).
func FakeTimeEnv(t testing.TB, start time.Time) []string {
	t.Helper()
	var lib string
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"} {
		if _, err := os.Stat(p); err == nil {
			lib = p
			break
		}
	}
	if lib == "" {
		t.Fatal("libfaketime is not installed: apt-get install libfaketime (make test-deps does); it moves the database server's clock")
	}
	return []string{"LD_PRELOAD=" + lib, "FAKETIME=@" + start.UTC().Format("2006-01-02 15:04:05"), "TZ=UTC", "FAKETIME_DONT_FAKE_MONOTONIC=1"}
}
