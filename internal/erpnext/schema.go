// Package erpnext builds an ERPNext-shaped site in a MariaDB database, for tests and the demo: the tables
// the sync reads (schema.sql, Frappe v15 create-table form) and a Site that writes them the way ERPNext
// does (see shared/erpnext/FINDINGS.md): `modified` from the Go clock in the site's time zone with
// microseconds, child rows sharing the parent's `modified`, raw-SQL side effects that leave no trace,
// Deleted Document rows on delete, renames that move only the renamed row's `modified` (after_rename) and leave an
// Edit Comment.
package erpnext

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"
)

// schemaSQL is the DDL of the site: a byte-identical copy of shared/erpnext/schema.sql.
//
//go:embed schema.sql
var schemaSQL string

// frappeCoreSQL is the DDL of Frappe core tables the sync reads that schema.sql does not hold (Version).
//
//go:embed frappe_core.sql
var frappeCoreSQL string

// CreateSchema creates the site's tables (schema.sql) in the database db is connected to, which should be
// empty, inserts the price lists Standard Selling and Wholesale (selling) and Standard Buying (buying), and
// stores tz as System Settings time_zone in tabSingles. tz is an IANA name such as
// "Asia/Kolkata"; "" leaves time_zone unset, as on a site where nobody set it (Frappe then assumes
// Asia/Kolkata). db needs no multiStatements: the statements are split here.
func CreateSchema(ctx context.Context, db *sql.DB, tz string) error {
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			return fmt.Errorf("erpnext: time zone: %w", err)
		}
	}
	// One connection: SET NAMES in the script must apply to the statements after it.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("erpnext: %w", err)
	}
	defer conn.Close()
	for _, stmt := range splitStatements(schemaSQL + "\n" + frappeCoreSQL) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("erpnext: schema.sql: %w\n%s", err, firstLine(stmt))
		}
	}
	// The price lists a new ERPNext company has (setup wizard), and the seed's Wholesale list.
	if _, err := conn.ExecContext(ctx, "INSERT INTO `tabPrice List` (name, creation, modified, modified_by, owner, enabled, price_list_name, currency, buying, selling) VALUES "+
		"('Standard Selling', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 'Administrator', 'Administrator', 1, 'Standard Selling', 'KES', 0, 1), "+
		"('Wholesale', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 'Administrator', 'Administrator', 1, 'Wholesale', 'KES', 0, 1), "+
		"('Standard Buying', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 'Administrator', 'Administrator', 1, 'Standard Buying', 'KES', 1, 0)"); err != nil {
		return fmt.Errorf("erpnext: price lists: %w", err)
	}
	if tz != "" {
		if _, err := conn.ExecContext(ctx,
			"INSERT INTO `tabSingles` (`doctype`, `field`, `value`) VALUES ('System Settings', 'time_zone', ?)", tz); err != nil {
			return fmt.Errorf("erpnext: setting time_zone: %w", err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// splitStatements splits an SQL script at semicolons outside quotes and comments, dropping comments and
// empty statements.
func splitStatements(script string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case c == '-' && strings.HasPrefix(script[i:], "-- "), c == '#':
			for i < len(script) && script[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			end := strings.Index(script[i+2:], "*/")
			if end < 0 {
				i = len(script)
			} else {
				i += 2 + end + 1
			}
			cur.WriteByte(' ')
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(script) {
				if script[j] == '\\' && c != '`' {
					j += 2
					continue
				}
				if script[j] == c {
					if j+1 < len(script) && script[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(script) {
				j = len(script) - 1
			}
			cur.WriteString(script[i : j+1])
			i = j
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// CreateReadOnlyUser creates (or updates the password of) user@'%' and user@'localhost' and grants them
// SELECT on database only. The user name may hold letters, digits, '_', '-' and '.'; the password must not
// hold quotes, backslashes or control characters.
func CreateReadOnlyUser(ctx context.Context, db *sql.DB, database, user, password string) error {
	if user == "" || len(user) > 80 || strings.TrimFunc(user, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
	}) != "" {
		return fmt.Errorf("erpnext: invalid user name %q", user)
	}
	if strings.ContainsFunc(password, func(r rune) bool { return r == '\'' || r == '"' || r == '\\' || r < 0x20 || r == 0x7f }) {
		return errors.New("erpnext: password must not contain quotes, backslashes or control characters")
	}
	if database == "" {
		return errors.New("erpnext: no database given")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("erpnext: %w", err)
	}
	defer conn.Close()
	for _, host := range []string{"%", "localhost"} {
		account := "'" + user + "'@'" + host + "'"
		for _, stmt := range []string{
			"CREATE USER IF NOT EXISTS " + account + " IDENTIFIED BY '" + password + "'",
			"ALTER USER " + account + " IDENTIFIED BY '" + password + "'",
			"GRANT SELECT ON " + quoteIdent(database) + ".* TO " + account,
		} {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("erpnext: creating read-only user %s: %w", account, err)
			}
		}
	}
	return nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
