package erpnext

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

var wantTables = []string{"tabBin", "tabComment", "tabDeleted Document", "tabFile", "tabItem", "tabItem Barcode", "tabItem Group", "tabItem Price", "tabItem Variant Attribute", "tabPrice List", "tabSingles", "tabStock Ledger Entry", "tabUOM Conversion Detail", "tabVersion", "tabWarehouse", "tabWebsite Item"}

func TestCreateSchema(t *testing.T) {
	tests := []struct {
		tz       string
		wantZone []string // rows of tabSingles time_zone
	}{
		{"Asia/Kolkata", []string{"Asia/Kolkata"}},
		{"America/New_York", []string{"America/New_York"}},
		{"", nil}, // unset, as on a site where nobody chose one
	}
	for _, tc := range tests {
		t.Run("tz="+tc.tz, func(t *testing.T) {
			db, err := sql.Open("mysql", mariadbtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := CreateSchema(context.Background(), db, tc.tz); err != nil {
				t.Fatal(err)
			}
			var tables []string
			for _, r := range rowsOf(t, db, "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION, ROW_FORMAT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()") {
				tables = append(tables, r[0])
				if r[1] != "InnoDB" || r[2] != "utf8mb4_unicode_ci" || r[3] != "Dynamic" {
					t.Errorf("table %s: engine/collation/row format %v", r[0], r[1:])
				}
			}
			sort.Strings(tables)
			if !reflect.DeepEqual(tables, wantTables) {
				t.Errorf("tables = %q, want %q", tables, wantTables)
			}
			var zones []string
			for _, r := range rowsOf(t, db, "SELECT `value` FROM `tabSingles` WHERE `doctype` = 'System Settings' AND `field` = 'time_zone'") {
				zones = append(zones, r[0])
			}
			if !reflect.DeepEqual(zones, tc.wantZone) {
				t.Errorf("time_zone rows = %q, want %q", zones, tc.wantZone)
			}
			// modified keeps microseconds.
			if _, err := db.Exec("INSERT INTO `tabItem` (`name`, `item_code`, `modified`) VALUES ('X', 'X', '2024-02-03 04:05:06.123456')"); err != nil {
				t.Fatal(err)
			}
			if got := row(t, db, "SELECT `modified` FROM `tabItem`")[0]; got != "2024-02-03 04:05:06.123456" {
				t.Errorf("modified = %q", got)
			}
		})
	}
}

func TestCreateSchemaErrors(t *testing.T) {
	db, err := sql.Open("mysql", mariadbtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := CreateSchema(context.Background(), db, "Mars/Olympus_Mons"); err == nil {
		t.Error("unknown time zone accepted")
	}
	if n := count(t, db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"); n != 0 {
		t.Errorf("%d tables created despite the bad time zone", n)
	}
	if err := CreateSchema(context.Background(), db, "UTC"); err != nil {
		t.Fatal(err)
	}
	if err := CreateSchema(context.Background(), db, "UTC"); err == nil {
		t.Error("second CreateSchema on the same database succeeded")
	}
}

// The poll query of the detector must use the modified index.
func TestExplainModifiedIndex(t *testing.T) {
	s, dsn := newSite(t)
	ctx := context.Background()
	s.Now = steppingClock(time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC), time.Minute) // most rows before 2024
	if err := s.Seed(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	s.Now = steppingClock(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Second)
	for i := 1; i <= 20; i++ {
		if err := s.SetPrice(ctx, itemCode(i), Price{PriceList: PriceListSelling, Currency: "KES", Rate: "1.5"}); err != nil {
			t.Fatal(err)
		}
	}
	db, _ := sql.Open("mysql", dsn)
	defer db.Close()
	if _, err := db.Exec("ANALYZE TABLE `tabItem Price`"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"EXPLAIN SELECT name, modified FROM `tabItem Price` WHERE modified >= '2024-01-01 00:00:00.000000' ORDER BY modified, name LIMIT 100",
		"EXPLAIN SELECT name, modified FROM `tabBin` WHERE modified >= '2024-01-01 00:00:00.000000' ORDER BY modified, name LIMIT 100",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		all := scanAll(t, rows)
		rows.Close()
		if len(all) != 1 {
			t.Fatalf("%s: %d rows", q, len(all))
		}
		got := map[string]string{}
		for i, c := range cols {
			got[c] = all[0][i]
		}
		if got["key"] != "modified" || got["type"] != "range" {
			t.Errorf("%s\n uses key=%s type=%s (Extra %q), want key=modified type=range", q, got["key"], got["type"], got["Extra"])
		}
		t.Logf("%s: key=%s type=%s rows=%s Extra=%s", q[:60], got["key"], got["type"], got["rows"], got["Extra"])
	}
}

func TestReadOnlyUser(t *testing.T) {
	s, dsn := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "RO-1", Group: "Products", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	user := "ro_" + cfg.DBName[len(cfg.DBName)-12:] // unique per test database
	t.Cleanup(func() {
		for _, h := range []string{"%", "localhost"} {
			s.DB.Exec("DROP USER IF EXISTS '" + user + "'@'" + h + "'")
		}
	})
	if err := CreateReadOnlyUser(ctx, s.DB, cfg.DBName, user, "s3cret-Pw"); err != nil {
		t.Fatal(err)
	}
	if err := CreateReadOnlyUser(ctx, s.DB, cfg.DBName, user, "s3cret-Pw2"); err != nil { // again: new password
		t.Fatalf("second CreateReadOnlyUser: %v", err)
	}
	for _, bad := range []struct{ user, pw string }{{"x'y", "pw"}, {"", "pw"}, {"ok", "p'w"}, {"ok", `p\w`}} {
		if err := CreateReadOnlyUser(ctx, s.DB, cfg.DBName, bad.user, bad.pw); err == nil {
			t.Errorf("CreateReadOnlyUser(%q, %q) accepted", bad.user, bad.pw)
		}
	}

	ro := cfg.Clone()
	ro.User, ro.Passwd = user, "s3cret-Pw2"
	rodb, err := sql.Open("mysql", ro.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer rodb.Close()
	if got := row(t, rodb, "SELECT `item_name` FROM `tabItem` WHERE `name` = 'RO-1'")[0]; got != "RO-1" {
		t.Errorf("item_name = %q", got)
	}
	writes := []string{
		"UPDATE `tabItem` SET `item_name` = 'x'",
		"INSERT INTO `tabSingles` VALUES ('a', 'b', 'c')",
		"DELETE FROM `tabBin`",
		"CREATE TABLE t (id int)",
	}
	for _, q := range writes {
		_, err := rodb.Exec(q)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || (me.Number != 1142 && me.Number != 1044) {
			t.Errorf("%s: err = %v, want a permission error", q, err)
		}
	}
	if _, err := rodb.Exec("SELECT 1 FROM mysql.user"); err == nil {
		t.Error("read-only user can read mysql.user")
	}
	// The old password no longer works.
	ro.Passwd = "s3cret-Pw"
	old, _ := sql.Open("mysql", ro.FormatDSN())
	defer old.Close()
	if err := old.Ping(); err == nil {
		t.Error("old password still accepted")
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- a comment; with a semicolon\nSET NAMES utf8mb4;\n/* block; */ CREATE TABLE `a;b` (c varchar(3) DEFAULT 'x;''y');\n# hash; comment\nSELECT \"q;\\\"\" ;  ;")
	want := []string{"SET NAMES utf8mb4", "CREATE TABLE `a;b` (c varchar(3) DEFAULT 'x;''y')", "SELECT \"q;\\\"\""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if n := len(splitStatements(schemaSQL)); n != 18 { // SET NAMES + 15 CREATE TABLE + 2 ALTER TABLE
		t.Errorf("schema.sql splits into %d statements, want 18", n)
	}
}
