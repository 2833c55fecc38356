package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/mariadb"
)

// testServer is the one MariaDB server of this test binary, started by the first test that needs one. The
// tests change its global settings (binlog_checksum, log_bin_compress) and read its binary log directory, so
// they do not share it with other packages' tests and do not run in parallel. TestMain and the tests can share
// it only through the package; it is written once, before any test runs, and set up once by server.
var testServer struct {
	once sync.Once
	srv  *mariadb.Server
	db   *sql.DB // root, no default database; connections are not kept idle (a USE would carry over)
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testServer.db != nil {
		testServer.db.Close()
	}
	if testServer.srv != nil {
		if err := testServer.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "binlog tests: stopping the server:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// server returns the test binary's server and a root pool, starting it on first use.
func server(tb testing.TB) (*mariadb.Server, *sql.DB) {
	tb.Helper()
	testServer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		testServer.srv, testServer.err = mariadb.Start(ctx, mariadb.Options{})
		if testServer.err != nil {
			return
		}
		testServer.db, testServer.err = mariadb.Connect(ctx, testServer.srv.RootDSN(""))
		if testServer.err == nil {
			testServer.db.SetMaxIdleConns(0)
		}
	})
	if testServer.err != nil {
		tb.Fatalf("starting MariaDB: %v", testServer.err)
	}
	return testServer.srv, testServer.db
}

// binlogDir is where the server writes its binary log.
func binlogDir(srv *mariadb.Server) string { return filepath.Join(srv.Dir, "binlog") }

// testCtx is a generous give-up bound for one test's database work.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// exec runs statements on one connection (so that USE, SET SESSION and BEGIN carry from one to the next).
func exec(tb testing.TB, db *sql.DB, stmts ...string) {
	tb.Helper()
	ctx := testCtx(tb)
	conn, err := db.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

// createSchemas creates each schema with an InnoDB table t and a MyISAM table m.
func createSchemas(tb testing.TB, db *sql.DB, names ...string) {
	tb.Helper()
	for _, n := range names {
		exec(tb, db,
			"CREATE DATABASE IF NOT EXISTS "+n,
			"CREATE TABLE IF NOT EXISTS "+n+".t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(600)) ENGINE=InnoDB",
			"CREATE TABLE IF NOT EXISTS "+n+".m (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(600)) ENGINE=MyISAM")
	}
}

// setGlobal sets a global variable for the rest of the test and puts the old value back after it.
func setGlobal(tb testing.TB, db *sql.DB, name, value string) {
	tb.Helper()
	var old string
	if err := db.QueryRowContext(testCtx(tb), "SELECT @@GLOBAL."+name).Scan(&old); err != nil {
		tb.Fatal(err)
	}
	exec(tb, db, fmt.Sprintf("SET GLOBAL %s = %s", name, value))
	tb.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), fmt.Sprintf("SET GLOBAL %s = %s", name, old)); err != nil {
			tb.Errorf("restoring %s: %v", name, err)
		}
	})
}

// masterStatus returns the server's current binary log file and position.
func masterStatus(tb testing.TB, db *sql.DB) (string, int64) {
	tb.Helper()
	var file string
	var pos int64
	var doDB, ignoreDB sql.NullString
	if err := db.QueryRowContext(testCtx(tb), "SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		tb.Fatal(err)
	}
	return file, pos
}

// openTail opens a Tail on dir.
func openTail(tb testing.TB, dir string) *Tail {
	tb.Helper()
	tail, err := Open(testCtx(tb), dir)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	return tail
}

// read calls Read and fails the test on error.
func read(tb testing.TB, tail *Tail) Changes {
	tb.Helper()
	ch, err := tail.Read(testCtx(tb))
	if err != nil {
		tb.Fatalf("Read: %v", err)
	}
	return ch
}

// checkChanges compares what Read returned with what was expected.
func checkChanges(tb testing.TB, what string, got, want Changes) {
	tb.Helper()
	if !slices.Equal(got.Schemas, want.Schemas) || got.Unknown != want.Unknown {
		tb.Errorf("%s: Read = %+v, want %+v", what, got, want)
	}
}

// checkAtEnd checks that the tail is where the server will write next.
func checkAtEnd(tb testing.TB, tail *Tail, db *sql.DB) {
	tb.Helper()
	wantFile, wantPos := masterStatus(tb, db)
	if file, pos := tail.Position(); file != wantFile || pos != wantPos {
		tb.Errorf("Position() = %s:%d, want %s:%d (SHOW MASTER STATUS)", file, pos, wantFile, wantPos)
	}
}
