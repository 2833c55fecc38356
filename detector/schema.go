package detector

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// siteDB is a pool and the schema (database) of one site. Every query it runs
// names the site's tables qualified by the schema (qualify), so that the sites
// of one database server can share one pool whatever database its connections
// are in; information_schema queries take the schema as a parameter instead of
// DATABASE().
type siteDB struct {
	db     *sql.DB
	schema string
	tab    string // "`schema`.`tab": what qualify puts in place of "`tab"
}

// newSiteDB returns db for the site whose database is schema, or, when schema
// is "", the database db's connections are in (read once).
func newSiteDB(ctx context.Context, db *sql.DB, schema string) (*siteDB, error) {
	if schema == "" {
		var name sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&name); err != nil {
			return nil, fmt.Errorf("read the site's database name: %w", err)
		}
		if !name.Valid || name.String == "" {
			return nil, siteErrorf("erp.dsn names no database: add /<site database> after the address")
		}
		schema = name.String
	}
	return &siteDB{db: db, schema: schema, tab: quoteIdent(schema) + ".`tab"}, nil
}

// qualify is the one place that names the site's tables: every Frappe table
// ("`tab...`", quoted as every query of this package writes it) becomes
// "`schema`.`tab...`".
func (s *siteDB) qualify(q string) string { return strings.ReplaceAll(q, "`tab", s.tab) }

// QueryContext runs q, qualified, on the pool.
func (s *siteDB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.qualify(q), args...)
}

// QueryRowContext runs q, qualified, on the pool.
func (s *siteDB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.qualify(q), args...)
}
