package detector

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// PolledTables are the tables Poll reads changes from: while none of them
// has changed, a poll finds nothing.
func PolledTables() []string {
	var names []string
	for _, t := range tables() {
		if !slices.Contains(names, t.name) {
			names = append(names, t.name)
		}
	}
	return names
}

// UpdateTimes is what one probe of a database server read: for each schema
// asked for, the InnoDB UPDATE_TIME of its polled tables, and the server's
// clock, as the server prints them (whole seconds, the session's zone).
type UpdateTimes struct {
	Now     string
	Updated map[string]SchemaTimes
}

// SchemaTimes are the UPDATE_TIMEs of one schema's polled tables: Latest is
// the latest of them ("" when every one is NULL, as after a restart before the
// next write); Tables is all of them, which changes whenever one does (even
// backwards, which Latest may not show).
type SchemaTimes struct {
	Latest, Tables string
}

// ReadUpdateTimes reads the UpdateTimes of schemas in one query. MariaDB 10.11
// keeps UPDATE_TIME per InnoDB table in memory: set when a transaction that
// wrote the table commits, to the second the transaction started (so a late
// commit moves it, possibly backwards, or leaves it as it was when another
// transaction that started in the same second committed first), unchanged by
// a rollback, and NULL after a restart until the next write. A schema missing
// from Updated has no polled table the user may see.
func ReadUpdateTimes(ctx context.Context, db *sql.DB, schemas []string) (UpdateTimes, error) {
	out := UpdateTimes{Updated: make(map[string]SchemaTimes, len(schemas))}
	if err := db.QueryRowContext(ctx, "SELECT NOW()").Scan(&out.Now); err != nil {
		return out, fmt.Errorf("read the server's clock: %w", err)
	}
	if len(schemas) == 0 {
		return out, nil
	}
	tables := PolledTables()
	slices.Sort(tables)
	// Exact lookups, one per table: MariaDB opens just that table for each
	// (TABLE_SCHEMA IN (…) AND TABLE_NAME IN (…) lists and filters every
	// table of every schema named, 800 of them in an ERPNext site, and took
	// twice as long at 90 sites). A statement holds probeChunk schemas.
	branch := "SELECT TABLE_SCHEMA, TABLE_NAME, UPDATE_TIME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?"
	for start := 0; start < len(schemas); start += probeChunk {
		chunk := schemas[start:min(start+probeChunk, len(schemas))]
		var q strings.Builder
		args := make([]any, 0, 2*len(chunk)*len(tables))
		for _, s := range chunk {
			for _, t := range tables {
				if len(args) > 0 {
					q.WriteString(" UNION ALL ")
				}
				q.WriteString(branch)
				args = append(args, s, t)
			}
		}
		if err := readUpdateTimes(ctx, db, q.String(), args, len(tables), out.Updated); err != nil {
			return out, err
		}
	}
	return out, nil
}

// probeChunk is how many schemas one statement of ReadUpdateTimes reads.
const probeChunk = 100

// readUpdateTimes runs one statement of ReadUpdateTimes, whose rows are
// (schema, table, UPDATE_TIME) in table name order within each schema, and
// adds what it read to updated.
func readUpdateTimes(ctx context.Context, db *sql.DB, q string, args []any, perSchema int, updated map[string]SchemaTimes) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read when the sites' tables last changed: %w", err)
	}
	defer rows.Close()
	var all strings.Builder
	for rows.Next() {
		var schema, table string
		var at sql.NullString
		if err := rows.Scan(&schema, &table, &at); err != nil {
			return fmt.Errorf("read when the sites' tables last changed: %w", err)
		}
		u := updated[schema]
		all.Reset()
		all.WriteString(u.Tables)
		if u.Tables != "" {
			all.WriteByte(',')
		}
		if at.Valid {
			all.WriteString(at.String)
			u.Latest = max(u.Latest, at.String)
		} else {
			all.WriteByte('-')
		}
		u.Tables = all.String()
		updated[schema] = u
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read when the sites' tables last changed: %w", err)
	}
	return nil
}

// ReadChangeMark reads a mark of the server's InnoDB writes: InnoDB's
// current log sequence number (status Innodb_lsn_current), which any user
// may read. It moves with every row an InnoDB statement writes and with every
// commit (a late commit moves it again), and stays put while nothing is
// written; reads, information_schema and named locks do not move it. Equal
// marks mean nothing was written or committed in between; a mark that
// differs may be the server's own background work (purge, statistics) after
// a change.
func ReadChangeMark(ctx context.Context, db *sql.DB) (string, error) {
	var name, mark string
	if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'").Scan(&name, &mark); err != nil {
		return "", fmt.Errorf("read the server's InnoDB log sequence number: %w", err)
	}
	return mark, nil
}

// ServerKey names the database server and user of dsn: sites whose DSNs
// share it can share a pool. ok is false when dsn does not parse.
func ServerKey(dsn string) (key, schema string, ok bool) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", "", false
	}
	return cfg.Net + "(" + cfg.Addr + ")/" + cfg.User, cfg.DBName, true
}

// OpenServer opens a small pool on the server of dsn, in information_schema
// (which every user may use), for probes that name the schemas they read.
func OpenServer(dsn string, maxConns int) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("erp.dsn is not a go-sql-driver DSN: %s", redactErr(err, dsn))
	}
	cfg.DBName = "information_schema"
	prepared, err := PrepareDSN(cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", prepared)
	if err != nil {
		return nil, fmt.Errorf("open database server %s: %w", RedactDSN(prepared), err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(5 * time.Minute)
	return db, nil
}
