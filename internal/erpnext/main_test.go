package erpnext

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

func TestMain(m *testing.M) { os.Exit(mariadbtest.RunTests(m)) }

const testTZ = "Africa/Nairobi" // UTC+3, no DST

// newSite returns a site on a fresh database with the schema loaded, and its root DSN. Its clock starts at
// 2025-01-02 03:04:05.123456 UTC and moves one millisecond per read, unless the test replaces Now.
func newSite(t testing.TB) (*Site, string) {
	t.Helper()
	dsn := mariadbtest.NewDatabase(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := CreateSchema(context.Background(), db, testTZ); err != nil {
		t.Fatal(err)
	}
	s, err := NewSite(db, testTZ)
	if err != nil {
		t.Fatal(err)
	}
	s.Now = steppingClock(time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC), time.Millisecond)
	return s, dsn
}

// steppingClock returns start, start+step, start+2·step, ...
func steppingClock(start time.Time, step time.Duration) func() time.Time {
	t := start.Add(-step)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// row reads one row of strings (NULL → "<nil>").
func row(t testing.TB, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	all := scanAll(t, rows)
	if len(all) != 1 {
		t.Fatalf("%s %v: %d rows, want 1", q, args, len(all))
	}
	return all[0]
}

func rowsOf(t testing.TB, db *sql.DB, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	return scanAll(t, rows)
}

func scanAll(t testing.TB, rows *sql.Rows) [][]string {
	t.Helper()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := make([]string, len(cols))
		for i, v := range vals {
			if v.Valid {
				r[i] = v.String
			} else {
				r[i] = "<nil>"
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t testing.TB, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func join(r []string) string { return strings.Join(r, "|") }
