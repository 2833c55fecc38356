package detector

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Cursor is a keyset position in one source: every row at or before
// (Modified, Name) in (modified, name) order has been handed out. Modified is
// the naive site-time text ERPNext stores ("2006-01-02 15:04:05.000000").
type Cursor struct {
	Modified string
	Name     string
}

func (c Cursor) less(o Cursor) bool {
	if c.Modified != o.Modified {
		return c.Modified < o.Modified
	}
	return c.Name < o.Name
}

// Batch is what one step of detection hands to the caller: the whole items
// that changed and the position that covers them. The caller stores the items
// and the position in one transaction; once emit returns nil the detector
// treats the rows as done.
type Batch struct {
	Source string // a Source* constant; "" for snapshot batches
	Items  []Item
	Cursor Cursor // new position of Source (poll batches)
	After  string // last item name covered (snapshot batches)
	Origin string // what found the items, for the log: a Source*, "snapshot" or "reconcile"; "" = Source or "snapshot"
}

// EmitFunc receives batches in order. An error stops the poll or snapshot and
// is returned as is; nothing after the failed batch counts as done.
type EmitFunc func(ctx context.Context, b Batch) error

const modifiedLayout = "2006-01-02 15:04:05.000000"

// table holds how one source is read.
type table struct {
	source, name string
}

func tables() []table {
	return []table{
		{SourceItem, "tabItem"},
		{SourcePrice, "tabItem Price"},
		{SourceBin, "tabBin"},
		{SourceDeleted, "tabDeleted Document"},
	}
}

// Now returns the database server's current time in the site's time zone, as
// ERPNext writes `modified`. It is the only clock the detector compares
// `modified` with.
func (d *Detector) Now(ctx context.Context) (string, error) {
	var utc string
	if err := d.db.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&utc); err != nil {
		return "", fmt.Errorf("read database clock: %w", err)
	}
	t, err := time.ParseInLocation(modifiedLayout, normModified(utc), time.UTC)
	if err != nil {
		return "", fmt.Errorf("read database clock: parse %q: %w", utc, err)
	}
	return t.In(d.loc).Format(modifiedLayout), nil
}

// StartCursors returns the cursors to follow changes from when nothing has
// been synced yet: the database's now, so that every row written after the
// initial snapshot began is seen (the overlap window covers commits in
// flight). Rows already visible inside the overlap window are marked as
// handed out, since the snapshot that follows reads their items anyway; so
// the first poll after a snapshot does not rebuild the items changed just
// before it.
func (d *Detector) StartCursors(ctx context.Context) (map[string]Cursor, error) {
	now, err := d.Now(ctx)
	if err != nil {
		return nil, err
	}
	lower, err := d.lowerBound(now, now)
	if err != nil {
		return nil, err
	}
	out := map[string]Cursor{}
	for _, t := range tables() {
		out[t.source] = Cursor{Modified: now}
		seen := map[string]string{}
		after := Cursor{Modified: lower}
		for {
			page, err := d.scanPage(ctx, pollQuery(t), after, t.name)
			if err != nil {
				return nil, err
			}
			for _, r := range page {
				seen[r.name] = r.modified
			}
			if len(page) < d.cfg.PageSize {
				break
			}
			last := page[len(page)-1]
			after = Cursor{Modified: last.modified, Name: last.name}
		}
		d.seen[t.source] = seen
	}
	return out, nil
}

// pollQuery is the keyset page query of a table. It is an index-only range
// scan: InnoDB's secondary index on modified carries the primary key (name),
// so neither filtering nor ordering touches the rows. Written as
// "modified > ? OR (modified = ? AND name > ?)" MariaDB seeks straight to
// (modified, name); the form "modified >= ? AND (…)" re-reads every row with
// the same modified on each page, which makes a bulk UPDATE quadratic.
func pollQuery(t table) string {
	return "SELECT name, modified FROM `" + t.name + "` WHERE modified > ? OR (modified = ? AND name > ?) ORDER BY modified, name LIMIT ?"
}

// Poll visits every source from its cursor minus the overlap window, in pages
// of (modified, name), builds the items behind rows it has not handed out yet,
// and emits them with the advanced cursor. Cursors never move past the
// database's own clock, so a row stamped in the future cannot make the
// detector skip rows written later. It returns the cursors after the poll.
//
// Work per poll is proportional to the rows inside the overlap window (an
// index-only range scan) plus the items that really changed.
func (d *Detector) Poll(ctx context.Context, cursors map[string]Cursor, emit EmitFunc) (map[string]Cursor, error) {
	return d.poll(ctx, cursors, emit, false)
}

// PollTail is Poll without the overlap window: it reads only rows after each
// cursor, so it costs a few index lookups however busy the window is. Use it
// when woken by a commit (erp.watch); a row that commits late with an older
// `modified` is caught by the next full Poll.
func (d *Detector) PollTail(ctx context.Context, cursors map[string]Cursor, emit EmitFunc) (map[string]Cursor, error) {
	return d.poll(ctx, cursors, emit, true)
}

func (d *Detector) poll(ctx context.Context, cursors map[string]Cursor, emit EmitFunc, tail bool) (map[string]Cursor, error) {
	now, err := d.Now(ctx)
	if err != nil {
		return cursors, err
	}
	out := make(map[string]Cursor, len(cursors))
	for k, v := range cursors {
		out[k] = v
	}
	for _, t := range tables() {
		cur, ok := out[t.source]
		if !ok || cur.Modified == "" {
			cur = Cursor{Modified: now}
		}
		next, err := d.pollTable(ctx, t, cur, now, tail, emit)
		if err != nil {
			return out, err
		}
		out[t.source] = next
	}
	return out, nil
}

type row struct{ name, modified string }

func (d *Detector) pollTable(ctx context.Context, t table, cur Cursor, now string, tail bool, emit EmitFunc) (Cursor, error) {
	lower, err := d.lowerBound(cur.Modified, now)
	if err != nil {
		return cur, fmt.Errorf("poll %s: %w", t.name, err)
	}
	after := Cursor{Modified: lower}
	if tail {
		after = cur
	}
	seen := d.seen[t.source]
	if seen == nil {
		seen = map[string]string{}
		d.seen[t.source] = seen
	}
	q := pollQuery(t)
	for {
		page, err := d.scanPage(ctx, q, after, t.name)
		if err != nil {
			return cur, err
		}
		if len(page) == 0 {
			break
		}
		var fresh []row
		for _, r := range page {
			if seen[r.name] != r.modified {
				fresh = append(fresh, r)
			}
		}
		last := page[len(page)-1]
		after = Cursor{Modified: last.modified, Name: last.name}
		next := cur
		if next.less(after) {
			next = after
		}
		if next.Modified > now {
			next = Cursor{Modified: now}
		}
		if len(fresh) > 0 || next != cur {
			var items []Item
			if len(fresh) > 0 {
				codes, err := d.codesOf(ctx, t, fresh)
				if err != nil {
					return cur, err
				}
				if items, err = d.Build(ctx, codes); err != nil {
					return cur, err
				}
			}
			if err := emit(ctx, Batch{Source: t.source, Items: items, Cursor: next}); err != nil {
				return cur, err
			}
			for _, r := range fresh {
				seen[r.name] = r.modified
			}
			cur = next
		}
		if len(page) < d.cfg.PageSize {
			break
		}
	}
	if !tail {
		for name, m := range seen {
			if m < lower {
				delete(seen, name)
			}
		}
	}
	return cur, nil
}

func (d *Detector) scanPage(ctx context.Context, q string, after Cursor, tableName string) ([]row, error) {
	rows, err := d.db.QueryContext(ctx, q, after.Modified, after.Modified, after.Name, d.cfg.PageSize)
	if err != nil {
		return nil, fmt.Errorf("poll %s after (%s, %s): %w", tableName, after.Modified, after.Name, err)
	}
	defer rows.Close()
	page := make([]row, 0, d.cfg.PageSize)
	for rows.Next() {
		var r row
		var m sql.NullString
		if err := rows.Scan(&r.name, &m); err != nil {
			return nil, fmt.Errorf("poll %s: %w", tableName, err)
		}
		r.modified = normModified(m.String)
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("poll %s: %w", tableName, err)
	}
	return page, nil
}

// codesOf maps changed rows of a source to the item codes they belong to.
func (d *Detector) codesOf(ctx context.Context, t table, rs []row) ([]string, error) {
	codes := make([]string, 0, len(rs))
	if t.source == SourceItem {
		for _, r := range rs {
			codes = append(codes, r.name)
		}
		return codes, nil
	}
	for start := 0; start < len(rs); start += d.cfg.PageSize {
		chunk := rs[start:min(start+d.cfg.PageSize, len(rs))]
		names := make([]any, len(chunk))
		for i, r := range chunk {
			names[i] = r.name
		}
		q := "SELECT item_code FROM `" + t.name + "` WHERE name IN (" + placeholders(len(names)) + ")"
		if t.source == SourceDeleted {
			// An Item delete names the item; a deleted Item Price names its item
			// in the document's JSON. Other doctypes are not ours.
			q = "SELECT CASE deleted_doctype WHEN 'Item' THEN deleted_name ELSE JSON_VALUE(data, '$.item_code') END " +
				"FROM `tabDeleted Document` WHERE name IN (" + placeholders(len(names)) + ") AND deleted_doctype IN ('Item', 'Item Price')"
		}
		var err error
		if codes, err = appendColumn(ctx, d.db, codes, q, names); err != nil {
			return nil, fmt.Errorf("map %s rows to items: %w", t.name, err)
		}
	}
	return codes, nil
}

// appendColumn runs a one-column query and appends its non-empty values.
func appendColumn(ctx context.Context, db *sql.DB, out []string, q string, args []any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return out, err
		}
		if v.Valid && v.String != "" {
			out = append(out, v.String)
		}
	}
	return out, rows.Err()
}

// lowerBound is where a poll starts: the cursor minus the overlap window, and
// minus the hour a daylight-saving fall-back repeats, if one happened since.
func (d *Detector) lowerBound(cursor, now string) (string, error) {
	c, err := time.Parse(modifiedLayout, normModified(cursor))
	if err != nil {
		return "", fmt.Errorf("cursor %q is not a timestamp: %w", cursor, err)
	}
	lower := c.Add(-d.cfg.Overlap)
	n, err := time.Parse(modifiedLayout, normModified(now))
	if err == nil {
		_, offThen := time.Date(lower.Year(), lower.Month(), lower.Day(), lower.Hour(), lower.Minute(), lower.Second(), 0, d.loc).Zone()
		_, offNow := time.Date(n.Year(), n.Month(), n.Day(), n.Hour(), n.Minute(), n.Second(), 0, d.loc).Zone()
		if offThen > offNow {
			lower = lower.Add(-time.Duration(offThen-offNow) * time.Second)
		}
	}
	return lower.Format(modifiedLayout), nil
}

// normModified writes a DATETIME text with exactly six fractional digits, so
// that cursors compare correctly as strings.
func normModified(s string) string {
	if len(s) < 19 {
		return s
	}
	if len(s) == 19 {
		return s + ".000000"
	}
	if len(s) >= 26 {
		return s[:26]
	}
	frac := s[20:]
	for len(frac) < 6 {
		frac += "0"
	}
	return s[:20] + frac
}
