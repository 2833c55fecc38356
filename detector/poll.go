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

// ModifiedLayout is how ERPNext writes `modified` and every cursor: naive
// site time with microseconds.
const ModifiedLayout = "2006-01-02 15:04:05.000000"

// table holds how one source is read.
type table struct {
	source, name string
	// filter is an SQL condition that every query of the source adds to its
	// range on modified; it must read only the index on modified. "" = none.
	filter string
	// serverClock: the source's cursor and now are the database session's
	// clock (NOW(6)), in which raw SQL stamps modified=NOW(), not site time.
	serverClock bool
	// optional: the table exists only with an app installed (webshop); the
	// source reads nothing where it is missing.
	optional bool
}

// tables lists the sources in poll order (Sources).
func tables() []table {
	return []table{
		// Renames first: a rename's Edit Comment commits with the new Item
		// row, so the old code's delete goes out in the batch before the
		// new code's upsert (which the tabItem source then finds unchanged).
		{source: SourceComment, name: "tabComment"},
		{source: SourceItem, name: "tabItem"},
		{source: SourcePrice, name: "tabItem Price"},
		// Price List save stamps all its Item Prices with modified=NOW():
		// whole seconds in the DB session's zone (FINDINGS §8.2). The ORM
		// writes microseconds, so the filter keeps (almost) only those rows,
		// and reads only the index.
		{source: SourcePriceServer, name: "tabItem Price", filter: "MICROSECOND(modified) = 0", serverClock: true},
		{source: SourceBin, name: "tabBin"},
		{source: SourceDeleted, name: "tabDeleted Document"},
		{source: SourcePriceList, name: "tabPrice List"},
		{source: SourceFile, name: "tabFile"},
		{source: SourceWebsiteItem, name: "tabWebsite Item", optional: true},
	}
}

// clock is what one poll compares `modified` with, read in one query.
type clock struct {
	site   string // the database's now in the site's time zone (ModifiedLayout)
	server string // the database session's NOW(6), as raw SQL stamps modified=NOW()
	// sameOffset: the session's UTC offset is the site's, so rows stamped
	// with NOW() read as site time and the site-time sources see them.
	sameOffset bool
}

// Now returns the database server's current time in the site's time zone, as
// ERPNext writes `modified`. It is the only clock the detector compares
// `modified` with (but for rows stamped with NOW(): see clock).
func (d *Detector) Now(ctx context.Context) (string, error) {
	c, err := d.clock(ctx)
	return c.site, err
}

// clock reads the database's UTC time and its session's local time in one
// statement, so both are the same instant.
func (d *Detector) clock(ctx context.Context) (clock, error) {
	var utc, local string
	if err := d.db.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6), NOW(6)").Scan(&utc, &local); err != nil {
		return clock{}, fmt.Errorf("read database clock: %w", err)
	}
	u, err := time.ParseInLocation(ModifiedLayout, normModified(utc), time.UTC)
	if err != nil {
		return clock{}, fmt.Errorf("read database clock: parse %q: %w", utc, err)
	}
	l, err := time.ParseInLocation(ModifiedLayout, normModified(local), time.UTC)
	if err != nil {
		return clock{}, fmt.Errorf("read database clock: parse %q: %w", local, err)
	}
	site := u.In(d.loc)
	_, siteOffset := site.Zone()
	return clock{
		site:       site.Format(ModifiedLayout),
		server:     l.Format(ModifiedLayout),
		sameOffset: l.Sub(u) == time.Duration(siteOffset)*time.Second,
	}, nil
}

// nowOf is the clock a source's cursor follows.
func (c clock) nowOf(t table) string {
	if t.serverClock {
		return c.server
	}
	return c.site
}

// StartCursors returns the cursors to follow changes from when nothing has
// been synced yet: the database's now, so that every row written after the
// initial snapshot began is seen (the overlap window covers commits in
// flight).
//
// With markWindow, rows already visible inside the overlap window are
// marked as handed out, since the snapshot that follows reads their items
// anyway; so the first poll after a snapshot does not rebuild the items
// changed just before it. That holds only when the receiver has nothing
// the snapshot does not replace: a snapshot reads the items that exist and
// are selected, never the ones deleted, renamed or deselected in the window.
// A standby taking over from another host passes false, so that its first
// poll reads the window and those deletes go out.
func (d *Detector) StartCursors(ctx context.Context, markWindow bool) (map[string]Cursor, error) {
	c, err := d.clock(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]Cursor{}
	for _, t := range tables() {
		old, err := d.sourceSeen(ctx, t)
		if err != nil {
			return nil, err
		}
		if old.missing {
			continue
		}
		now := c.nowOf(t)
		out[t.source] = Cursor{Modified: now}
		if !markWindow {
			continue
		}
		lower, err := d.lowerBound(t, now, now)
		if err != nil {
			return nil, err
		}
		seen := newSeenSet()
		after := Cursor{Modified: lower}
		for {
			page, err := d.scanPage(ctx, t, after, false, now)
			if err != nil {
				return nil, err
			}
			for _, r := range page {
				seen.add(r.name, r.key, r.crc, 0)
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
//
// A source with a filter or on the server's clock reads groupQuery's form,
// bounded above by its now.
func pollQuery(t table) string {
	return "SELECT name, modified FROM `" + t.name + "` WHERE modified > ? OR (modified = ? AND name > ?) ORDER BY modified, name LIMIT ?"
}

// and is the source's filter as a condition to add with AND; "" when none.
func (t table) and() string {
	if t.filter == "" {
		return ""
	}
	return " AND " + t.filter
}

// windowQuery is the checksum of the rows with modified in [?, ?]: count, sum
// and XOR of CRC32(CONCAT(name, modified)) (rowChecksum). Like pollQuery it
// reads only the index on modified. The bounds must be passed as text: the
// driver sends a time.Time with nanoseconds, and MariaDB then compares every
// row instead of seeking.
func windowQuery(t table) string {
	return "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(name, modified))), 0), COALESCE(BIT_XOR(CRC32(CONCAT(name, modified))), 0) " +
		"FROM `" + t.name + "` WHERE modified >= ? AND modified <= ?" + t.and()
}

// groupQuery is a keyset page of the rows with one modified, in name order:
// pollQuery bounded above by that modified (arguments: modified, modified,
// name, modified, limit). Written "modified = ? AND name > ?", MariaDB chose
// ref access on modified for a large group and read it from its first row on
// every page (15,501 rows read for a page of 500 from the 15,000th on), which
// made re-reading a bulk change that the overlap window found quadratic.
func groupQuery(t table) string {
	return "SELECT name, modified FROM `" + t.name + "` WHERE (modified > ? OR (modified = ? AND name > ?)) AND modified <= ?" + t.and() + " ORDER BY modified, name LIMIT ?"
}

// windowGroupsQuery is windowQuery per distinct modified, in order.
func windowGroupsQuery(t table) string {
	return "SELECT modified, COUNT(*), SUM(CRC32(CONCAT(name, modified))), BIT_XOR(CRC32(CONCAT(name, modified))) " +
		"FROM `" + t.name + "` WHERE modified >= ? AND modified <= ?" + t.and() + " GROUP BY modified ORDER BY modified"
}

// Poll visits every source: it reads the rows after its cursor in pages of
// (modified, name), builds the items behind rows it has not handed out yet,
// and emits them with the advanced cursor; then it checks the overlap window
// behind the cursor for rows that committed late with an older `modified`, and
// hands those out too. Cursors never move past the database's own clock, so a
// row stamped in the future cannot make the detector skip rows written later.
// It returns the cursors after the poll.
//
// The window check is one aggregate query (count and checksums of (name,
// modified), index-only) compared with the same figures of the rows handed
// out; only when they differ does the poll re-read rows: those of each
// `modified` whose per-value checksums differ, or every row from the first
// such value on when there are many. So work per poll is one index range scan
// over the window in the server, plus the items that really changed.
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
	c, err := d.clock(ctx)
	if err != nil {
		return cursors, err
	}
	out := make(map[string]Cursor, len(cursors))
	for k, v := range cursors {
		out[k] = v
	}
	for _, t := range tables() {
		seen, err := d.sourceSeen(ctx, t)
		if err != nil {
			return out, err
		}
		if seen.missing {
			continue
		}
		now := c.nowOf(t)
		cur, ok := out[t.source]
		if !ok || cur.Modified == "" || (t.serverClock && cur.Modified > now) {
			// No cursor yet; or the session's clock went back (a
			// daylight-saving fall-back of the server's zone): NOW() now
			// stamps rows behind the cursor, which the window behind now
			// still covers.
			cur = Cursor{Modified: now}
		}
		var next Cursor
		if t.serverClock && c.sameOffset {
			// NOW() stamps site time: the site-time source reads those rows.
			next, err = d.advanceIdle(ctx, t, cur, now, emit)
		} else {
			// On an error next still covers the batches emitted before it.
			next, err = d.pollTable(ctx, t, seen, cur, now, tail, emit)
		}
		out[t.source] = next
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// sourceSeen returns the rows of t handed out, after checking once whether an
// optional table exists.
func (d *Detector) sourceSeen(ctx context.Context, t table) (*seenSet, error) {
	if seen := d.seen[t.source]; seen != nil {
		return seen, nil
	}
	seen := newSeenSet()
	var err error
	if seen.missing, err = d.tableMissing(ctx, t); err != nil {
		return nil, err
	}
	d.seen[t.source] = seen
	return seen, nil
}

// tableMissing reports whether the optional table of t is missing: it is
// read from the remembered set, or from information_schema once.
func (d *Detector) tableMissing(ctx context.Context, t table) (bool, error) {
	if !t.optional {
		return false, nil
	}
	if seen := d.seen[t.source]; seen != nil {
		return seen.missing, nil
	}
	var n int
	err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", d.db.schema, t.name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check whether table %s exists: %w", t.name, err)
	}
	if n == 0 {
		d.logger.Info("table not found: its changes are not polled (install the app that adds it and restart)", "table", t.name, "source", t.source)
	}
	return n == 0, nil
}

// row is one (name, modified) of a source as a page query reads it.
type row struct {
	name, modified string // modified normalised by normModified
	key            int64  // modifiedKey(modified)
	crc            uint32 // rowChecksum of name and modified as the server sent it
}

func (d *Detector) pollTable(ctx context.Context, t table, seen *seenSet, cur Cursor, now string, tail bool, emit EmitFunc) (Cursor, error) {
	lower, err := d.lowerBound(t, cur.Modified, now)
	if err != nil {
		return cur, fmt.Errorf("poll %s: %w", t.source, err)
	}
	cur, err = d.readRows(ctx, t, seen, cur, cur, false, lower, now, 0, emit)
	if err != nil || tail {
		return cur, err
	}
	if cur, err = d.advanceIdle(ctx, t, cur, now, emit); err != nil {
		return cur, err
	}
	// This poll's window still reaches back from the cursor it began with.
	return d.checkWindow(ctx, t, seen, cur, lower, now, emit)
}

// advanceIdle moves the cursor of a table that has not changed for a while up
// to the database's now, with a batch of no items. A cursor only moves with
// the rows it covers, so without this the overlap window of a quiet table
// would stay on its last change for good: after a bulk change, every poll
// would check the bulk's rows again, and the detector would keep remembering
// them. Nothing after the cursor was visible (readRows just read to the
// end), and what commits later with an older `modified` is still inside the
// window behind the new cursor. It moves at most every overlap/4, so a quiet
// table costs a cursor write every few minutes, not every poll.
func (d *Detector) advanceIdle(ctx context.Context, t table, cur Cursor, now string, emit EmitFunc) (Cursor, error) {
	c, err1 := time.Parse(ModifiedLayout, normModified(cur.Modified))
	n, err2 := time.Parse(ModifiedLayout, normModified(now))
	if err1 != nil || err2 != nil || n.Sub(c) <= d.cfg.Overlap/4 {
		return cur, nil
	}
	next := Cursor{Modified: now}
	if err := emit(ctx, Batch{Source: t.source, Cursor: next}); err != nil {
		return cur, err
	}
	return next, nil
}

// readRows reads the rows of t after the position after in pages, to the end
// of the table or, with group, of the rows with modified = after.Modified; it
// emits the items behind the rows not handed out yet with cur advanced over
// each page. A window re-read passes gen != 0: the rows it finds are marked
// with it, for seenSet.sweep. lower is where this poll's window starts.
func (d *Detector) readRows(ctx context.Context, t table, seen *seenSet, cur, after Cursor, group bool, lower, now string, gen uint32, emit EmitFunc) (Cursor, error) {
	// Each page's batch is emitted on another goroutine while the next page
	// is read and built, so that MariaDB's work and the caller's (storing
	// the batch) overlap. Batches still go out one at a time and in order,
	// and a page counts as handed out (seen, cur) only once its emit
	// returned nil; after a failed emit nothing later counts.
	var inflight *pageEmit
	settle := func() error {
		if inflight == nil {
			return nil
		}
		p := inflight
		inflight = nil
		if err := <-p.done; err != nil {
			return err
		}
		for _, r := range p.fresh {
			seen.add(r.name, r.key, r.crc, gen)
		}
		cur = p.next
		return nil
	}
	planned := cur // where cur will be once every page emitted so far is settled
	for {
		page, err := d.scanPage(ctx, t, after, group, now)
		if err != nil {
			serr := settle()
			return cur, firstErr(serr, err)
		}
		d.stats.rowsRead += len(page)
		if len(page) == 0 {
			break
		}
		var fresh []row
		for _, r := range page {
			// Rows of earlier pages still being emitted are other (name,
			// modified) pairs: the keyset order never repeats one.
			if !seen.has(r.name, r.key) {
				fresh = append(fresh, r)
			} else if gen != 0 {
				seen.mark(r.name, r.key, gen)
			}
		}
		last := page[len(page)-1]
		after = Cursor{Modified: last.modified, Name: last.name}
		next := planned
		if next.less(after) {
			next = after
		}
		if next.Modified > now {
			next = Cursor{Modified: now}
		}
		if len(fresh) > 0 || next != planned {
			// A page can name more items than fit a batch (a price list's
			// items): all batches but its last keep the cursor where it
			// was, so that a crash reads the page again; the last one
			// moves it and hands the page's rows out.
			send := func(items []Item, lastOfPage bool) error {
				if err := settle(); err != nil {
					return err
				}
				b, rs := Batch{Source: t.source, Items: items, Cursor: planned}, []row(nil)
				if lastOfPage {
					b.Cursor, rs = next, fresh
				}
				inflight = startEmit(ctx, emit, b, rs, b.Cursor)
				return nil
			}
			if len(fresh) > 0 {
				err = d.handOut(ctx, t, fresh, lower, send)
			} else {
				err = send(nil, true)
			}
			if err != nil {
				serr := settle()
				return cur, firstErr(serr, err)
			}
			planned = next
		}
		if len(page) < d.cfg.PageSize {
			break
		}
	}
	err := settle() // before cur is read: it moves cur
	return cur, err
}

// pageEmit is the emit of one page's batch, running.
type pageEmit struct {
	done  chan error
	fresh []row  // the rows it hands out
	next  Cursor // the cursor it moves to
}

func startEmit(ctx context.Context, emit EmitFunc, b Batch, fresh []row, next Cursor) *pageEmit {
	p := &pageEmit{done: make(chan error, 1), fresh: fresh, next: next}
	go func() { p.done <- emit(ctx, b) }()
	return p
}

// firstErr returns a, or b when a is nil: an emit's error comes first, as
// returned by the caller's EmitFunc.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// maxGroupRereads is how many differing `modified` values a window re-read
// reads one by one; beyond that it reads every row from the first on.
const maxGroupRereads = 32

// checkWindow compares the rows of t with modified in [lower, cur.Modified]
// with those handed out. When they differ, rows committed late (or were
// deleted, or moved): it finds the modified values whose rows differ, re-reads
// those rows and hands out the ones it has not yet.
func (d *Detector) checkWindow(ctx context.Context, t table, seen *seenSet, cur Cursor, lower, now string, emit EmitFunc) (Cursor, error) {
	upper := normModified(cur.Modified)
	lowerKey, ok := modifiedKey(lower)
	upperKey, ok2 := modifiedKey(upper)
	if !ok || !ok2 {
		return cur, fmt.Errorf("poll %s: overlap window [%q, %q] is not a pair of timestamps", t.name, lower, upper)
	}
	seen.prune(lowerKey)
	if upperKey < lowerKey { // the database's clock went back past the window
		return cur, nil
	}
	var db checksum
	var xor uint64
	if err := d.db.QueryRowContext(ctx, windowQuery(t), lower, upper).Scan(&db.count, &db.sum, &xor); err != nil {
		return cur, fmt.Errorf("poll %s: checksum of the overlap window [%s, %s]: %w", t.name, lower, upper, err)
	}
	db.xor = uint32(xor)
	if db == seen.window(lowerKey, upperKey) {
		return cur, nil
	}
	d.stats.windowRereads++
	keys, err := d.differingGroups(ctx, t, seen, lower, upper, lowerKey, upperKey)
	if err != nil || len(keys) == 0 {
		return cur, err
	}
	d.logger.Debug("rows changed inside the overlap window; re-reading them", "table", t.name,
		"from", modifiedText(keys[0]), "modified_values", len(keys))
	seen.gen++
	if seen.gen == 0 {
		seen.gen++
	}
	if len(keys) > maxGroupRereads {
		cur, err = d.readRows(ctx, t, seen, cur, Cursor{Modified: modifiedText(keys[0])}, false, lower, now, seen.gen, emit)
		if err != nil {
			return cur, err
		}
		seen.sweep(keys[0], -1, seen.gen)
		return cur, nil
	}
	for _, k := range keys {
		cur, err = d.readRows(ctx, t, seen, cur, Cursor{Modified: modifiedText(k)}, true, lower, now, seen.gen, emit)
		if err != nil {
			return cur, err
		}
		seen.sweep(k, k, seen.gen)
	}
	return cur, nil
}

// differingGroups returns, in order, the modified values in [lower, upper]
// whose rows in t differ from those handed out, comparing per-modified
// checksums; at most maxGroupRereads+1 of them.
func (d *Detector) differingGroups(ctx context.Context, t table, seen *seenSet, lower, upper string, lowerKey, upperKey int64) ([]int64, error) {
	rows, err := d.db.QueryContext(ctx, windowGroupsQuery(t), lower, upper)
	if err != nil {
		return nil, fmt.Errorf("poll %s: checksums of the overlap window [%s, %s] by modified: %w", t.name, lower, upper, err)
	}
	defer rows.Close()
	mine := seen.groupsIn(lowerKey, upperKey)
	var out []int64
	for rows.Next() && len(out) <= maxGroupRereads {
		var m string
		var c checksum
		var xor uint64
		if err := rows.Scan(&m, &c.count, &c.sum, &xor); err != nil {
			return nil, fmt.Errorf("poll %s: checksums of the overlap window by modified: %w", t.name, err)
		}
		c.xor = uint32(xor)
		k, ok := modifiedKey(normModified(m))
		if !ok {
			return nil, fmt.Errorf("poll %s: modified %q is not a timestamp", t.name, m)
		}
		for len(mine) > 0 && mine[0] < k { // handed out, no longer in the table
			out = append(out, mine[0])
			mine = mine[1:]
		}
		if len(mine) > 0 && mine[0] == k {
			if seen.groups[k].sum != c {
				out = append(out, k)
			}
			mine = mine[1:]
		} else { // in the table, never handed out
			out = append(out, k)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("poll %s: checksums of the overlap window by modified: %w", t.name, err)
	}
	out = append(out, mine...)
	return out[:min(len(out), maxGroupRereads+1)], nil
}

// scanPage reads one page of rows after the position after: the keyset page
// of pollQuery or, with group, of groupQuery.
//
// A source with a filter or on the server's clock reads at most to now:
// without the bound, rows after it (ORM rows in site time, ahead of the
// server's clock) would make the filtered scan read to the end of the index.
func (d *Detector) scanPage(ctx context.Context, t table, after Cursor, group bool, now string) ([]row, error) {
	q, args := pollQuery(t), []any{after.Modified, after.Modified, after.Name, d.cfg.PageSize}
	switch {
	case group:
		q, args = groupQuery(t), []any{after.Modified, after.Modified, after.Name, after.Modified, d.cfg.PageSize}
	case t.filter != "" || t.serverClock:
		q, args = groupQuery(t), []any{after.Modified, after.Modified, after.Name, now, d.cfg.PageSize}
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("poll %s after (%s, %s): %w", t.name, after.Modified, after.Name, err)
	}
	defer rows.Close()
	page := make([]row, 0, d.cfg.PageSize)
	var buf []byte
	for rows.Next() {
		var r row
		var m sql.NullString
		if err := rows.Scan(&r.name, &m); err != nil {
			return nil, fmt.Errorf("poll %s: %w", t.name, err)
		}
		r.modified = normModified(m.String)
		var ok bool
		if r.key, ok = modifiedKey(r.modified); !ok {
			return nil, fmt.Errorf("poll %s: row %q: modified %q is not a timestamp", t.name, r.name, m.String)
		}
		buf, r.crc = rowChecksum(buf, r.name, m.String)
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("poll %s: %w", t.name, err)
	}
	return page, nil
}

// appendColumn runs a one-column query and appends its non-empty values.
func appendColumn(ctx context.Context, db *siteDB, out []string, q string, args []any) ([]string, error) {
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

// lowerBound is where a poll of t starts: the cursor minus the overlap window,
// and minus the hour a daylight-saving fall-back of the site's zone repeats,
// if one happened since. (The server's zone is unknown: a source on its clock
// restarts at now when the clock goes back; see poll.)
func (d *Detector) lowerBound(t table, cursor, now string) (string, error) {
	c, err := time.Parse(ModifiedLayout, normModified(cursor))
	if err != nil {
		return "", fmt.Errorf("cursor %q is not a timestamp: %w", cursor, err)
	}
	lower := c.Add(-d.cfg.Overlap)
	n, err := time.Parse(ModifiedLayout, normModified(now))
	if err == nil && !t.serverClock {
		_, offThen := time.Date(lower.Year(), lower.Month(), lower.Day(), lower.Hour(), lower.Minute(), lower.Second(), 0, d.loc).Zone()
		_, offNow := time.Date(n.Year(), n.Month(), n.Day(), n.Hour(), n.Minute(), n.Second(), 0, d.loc).Zone()
		if offThen > offNow {
			lower = lower.Add(-time.Duration(offThen-offNow) * time.Second)
		}
	}
	return lower.Format(ModifiedLayout), nil
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
