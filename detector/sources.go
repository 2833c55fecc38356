package detector

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// work is what one page of changed rows of a source asks to send.
type work struct {
	codes   []string // items to build
	renames []rename // old codes to send as deletes, each followed by its new item
	lists   []string // price lists every item with a price in which is sent again
	groups  []string // item groups every item of which is sent again
}

// rename is an item code that a rename or a merge retired.
type rename struct {
	old, new string
	reason   string // ReasonRenamed or ReasonMerged
}

// handOut sends the items that the changed rows rs of t name, built whole,
// through send in batches of at most PageSize items (a rename's delete and
// its new item count as two and share a batch); the last call has last set,
// even when it carries no items. lower is where the poll's window starts:
// what happened to the rows since then (their Version rows) is read back to
// it.
func (d *Detector) handOut(ctx context.Context, t table, rs []row, lower string, send func(items []Item, last bool) error) error {
	w, err := d.pageWork(ctx, t, rs, lower)
	if err != nil {
		return err
	}
	c := newChunker(d, send)
	for _, r := range w.renames {
		if err := c.addRename(ctx, r); err != nil {
			return err
		}
	}
	for _, code := range w.codes {
		if err := c.add(ctx, code); err != nil {
			return err
		}
	}
	for _, l := range w.lists {
		if err := d.streamItems(ctx, priceListItemsQuery, "price list", l, c.add); err != nil {
			return err
		}
	}
	for _, g := range w.groups {
		if err := d.streamItems(ctx, groupItemsQuery, "item group", g, c.add); err != nil {
			return err
		}
	}
	return c.flush(ctx, true)
}

// pageWork maps changed rows of a source to what must be sent.
func (d *Detector) pageWork(ctx context.Context, t table, rs []row, lower string) (work, error) {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.name
	}
	var w work
	var err error
	switch t.source {
	case SourceItem:
		w.codes = names
	case SourcePrice, SourcePriceServer:
		w.codes, err = d.priceItems(ctx, t, names, lower)
	case SourceBin:
		w.codes, err = d.mapNames(ctx, "SELECT item_code FROM `tabBin` WHERE name IN (%s)", names)
	case SourceDeleted:
		w.codes, err = d.deletedItems(ctx, names)
	case SourceFile:
		// Insert, and is_private toggles; attach from a field saves the Item too.
		w.codes, err = d.mapNames(ctx, "SELECT attached_to_name FROM `tabFile` WHERE name IN (%s) AND attached_to_doctype = 'Item'", names)
	case SourceWebsiteItem:
		w.codes, err = d.mapNames(ctx, "SELECT item_code FROM `tabWebsite Item` WHERE name IN (%s)", names)
	case SourceComment:
		w, err = d.editComments(ctx, names)
	case SourcePriceList:
		// A save: enabled, selling and currency decide which of its rows
		// are sent. name is price_list_name, what Item Price.price_list holds.
		w.lists = names
	default:
		err = fmt.Errorf("unknown source %q", t.source)
	}
	if err != nil {
		return work{}, fmt.Errorf("map changed %s rows (%s) to items: %w", t.name, t.source, err)
	}
	return w, nil
}

// mapNames runs q, a one-column query with a %s for the placeholders of
// names, on pages of names, and returns the values.
func (d *Detector) mapNames(ctx context.Context, q string, names []string) ([]string, error) {
	var out []string
	for start := 0; start < len(names); start += d.cfg.PageSize {
		chunk := names[start:min(start+d.cfg.PageSize, len(names))]
		var err error
		if out, err = appendColumn(ctx, d.db, out, fmt.Sprintf(q, placeholders(len(chunk))), anySlice(chunk)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// priceItems returns the items of changed Item Price rows: each row's item,
// for rows ERPNext saved (site time) the item a row was moved away from, and
// the variants of all those items, which inherit a template's price.
func (d *Detector) priceItems(ctx context.Context, t table, names []string, lower string) ([]string, error) {
	codes, err := d.mapNames(ctx, "SELECT item_code FROM `tabItem Price` WHERE name IN (%s)", names)
	if err != nil {
		return nil, err
	}
	if !t.serverClock { // NOW() is a Price List save: it never moves a row
		moved, err := d.movedPrices(ctx, names, lower)
		if err != nil {
			return nil, err
		}
		codes = append(codes, moved...)
	}
	return d.withVariants(ctx, codes)
}

// deletedItems maps Deleted Document rows to the items they concern: a
// deleted Item, Item Price (and the variants of its item), File attached to an
// Item, or Website Item. Other doctypes are not ours.
func (d *Detector) deletedItems(ctx context.Context, names []string) ([]string, error) {
	const q = "SELECT deleted_doctype, CASE deleted_doctype WHEN 'Item' THEN deleted_name " +
		"WHEN 'File' THEN IF(JSON_VALUE(data, '$.attached_to_doctype') = 'Item', JSON_VALUE(data, '$.attached_to_name'), NULL) " +
		"ELSE JSON_VALUE(data, '$.item_code') END " +
		"FROM `tabDeleted Document` WHERE name IN (%s) AND deleted_doctype IN ('Item', 'Item Price', 'File', 'Website Item')"
	var codes, priced []string
	for start := 0; start < len(names); start += d.cfg.PageSize {
		chunk := names[start:min(start+d.cfg.PageSize, len(names))]
		err := eachRow(ctx, d.db, fmt.Sprintf(q, placeholders(len(chunk))), anySlice(chunk), func(vals []sql.NullString) {
			if !vals[1].Valid || vals[1].String == "" {
				return
			}
			codes = append(codes, vals[1].String)
			if vals[0].String == "Item Price" {
				priced = append(priced, vals[1].String)
			}
		}, 2)
		if err != nil {
			return nil, err
		}
	}
	variants, err := d.variantsOf(ctx, priced)
	return append(codes, variants...), err
}

// withVariants returns codes followed by the variants of those that are
// templates.
func (d *Detector) withVariants(ctx context.Context, codes []string) ([]string, error) {
	variants, err := d.variantsOf(ctx, codes)
	return append(codes, variants...), err
}

// variantsOf returns the variants of the templates among codes: one query
// (the variant_of index) per page of codes.
func (d *Detector) variantsOf(ctx context.Context, codes []string) ([]string, error) {
	codes = uniqueSorted(codes)
	var out []string
	for start := 0; start < len(codes); start += d.cfg.PageSize {
		chunk := codes[start:min(start+d.cfg.PageSize, len(codes))]
		var err error
		out, err = appendColumn(ctx, d.db, out, "SELECT name FROM `tabItem` WHERE variant_of IN ("+placeholders(len(chunk))+")", anySlice(chunk))
		if err != nil {
			return nil, fmt.Errorf("read the variants of %s: %w", codeRange(chunk), err)
		}
	}
	return out, nil
}

// movedPrices returns the item codes that Item Price rows names had before
// an edit moved them to another item. ERPNext records the old value only in
// the row's Version (track_changes): data {"changed": [["item_code", old,
// new], ...]}. Versions are read through the (ref_doctype, docname) index and
// only from lower on: a row's older history was read by earlier polls.
func (d *Detector) movedPrices(ctx context.Context, names []string, lower string) ([]string, error) {
	const q = "SELECT data FROM `tabVersion` WHERE ref_doctype = 'Item Price' AND docname IN (%s) AND modified >= ?"
	var out []string
	for start := 0; start < len(names); start += d.cfg.PageSize {
		chunk := names[start:min(start+d.cfg.PageSize, len(names))]
		args := append(anySlice(chunk), lower)
		err := eachRow(ctx, d.db, fmt.Sprintf(q, placeholders(len(chunk))), args, func(vals []sql.NullString) {
			out = append(out, changedFrom(vals[0].String, "item_code")...)
		}, 1)
		if isNoSuchTable(err) {
			return nil, nil // a database without Frappe's Version table: nothing to read
		}
		if err != nil {
			return nil, fmt.Errorf("read Item Price versions: %w", err)
		}
	}
	return out, nil
}

// changedFrom returns the old values of field in a Version's data; none
// when the data is not what Frappe writes.
func changedFrom(data, field string) []string {
	var v struct {
		Changed [][]json.RawMessage `json:"changed"`
	}
	if json.Unmarshal([]byte(data), &v) != nil {
		return nil
	}
	var out []string
	for _, c := range v.Changed {
		var name, old string
		if len(c) < 2 || json.Unmarshal(c[0], &name) != nil || name != field || json.Unmarshal(c[1], &old) != nil || old == "" {
			continue
		}
		out = append(out, old)
	}
	return out
}

// isNoSuchTable reports MariaDB's "table doesn't exist" (1146).
func isNoSuchTable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1146
}

// eachRow runs q and calls f with the n text columns of each row.
func eachRow(ctx context.Context, db *siteDB, q string, args []any, f func([]sql.NullString), n int) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]sql.NullString, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		f(vals)
	}
	return rows.Err()
}

// Keyset pages of the items in one price list or item group: (row name,
// item code) after a row name. Both read an index on the key column, which
// carries the primary key (name), so each page seeks to its start and reads
// a page of rows whatever the set's size. (Ordered by item_code instead,
// every page of a price list would read all of its rows.) An item with
// several prices in a list may come twice; the batches drop repeats.
const (
	priceListItemsQuery = "SELECT name, item_code FROM `tabItem Price` WHERE price_list = ? AND name > ? ORDER BY name LIMIT ?"
	groupItemsQuery     = "SELECT name, name FROM `tabItem` WHERE item_group = ? AND name > ? ORDER BY name LIMIT ?"
)

// streamItems passes each item that q finds for key to add, a page at a
// time, so that a large set is never held whole.
func (d *Detector) streamItems(ctx context.Context, q, what, key string, add func(context.Context, string) error) error {
	after := ""
	for {
		var page [][2]string
		err := eachRow(ctx, d.db, q, []any{key, after, d.cfg.PageSize}, func(vals []sql.NullString) {
			page = append(page, [2]string{vals[0].String, vals[1].String})
		}, 2)
		if err != nil {
			return fmt.Errorf("read the items of %s %q after %q: %w", what, key, after, err)
		}
		for _, p := range page {
			if err := add(ctx, p[1]); err != nil {
				return err
			}
		}
		if len(page) < d.cfg.PageSize {
			return nil
		}
		after = page[len(page)-1][0]
	}
}

// chunker gathers the items of one page of rows into batches of at most
// PageSize items, builds each and sends it.
type chunker struct {
	d       *Detector
	send    func(items []Item, last bool) error
	codes   []string
	has     map[string]bool
	renames []rename
}

func newChunker(d *Detector, send func([]Item, bool) error) *chunker {
	return &chunker{d: d, send: send, has: map[string]bool{}}
}

func (c *chunker) size() int { return len(c.codes) + len(c.renames) }

// add adds an item to build, sending the batch first when it is full.
func (c *chunker) add(ctx context.Context, code string) error {
	if code == "" || c.has[code] {
		return nil
	}
	if c.size() >= c.d.cfg.PageSize {
		if err := c.flush(ctx, false); err != nil {
			return err
		}
	}
	c.codes = append(c.codes, code)
	c.has[code] = true
	return nil
}

// addRename adds a rename: its delete and its new item go in one batch.
func (c *chunker) addRename(ctx context.Context, r rename) error {
	if c.size() > 0 && c.size()+2 > c.d.cfg.PageSize {
		if err := c.flush(ctx, false); err != nil {
			return err
		}
	}
	c.renames = append(c.renames, r)
	if !c.has[r.new] {
		c.codes = append(c.codes, r.new)
		c.has[r.new] = true
	}
	return nil
}

// flush builds the batch and sends it. A rename's old code is sent as a
// delete with its reason only when no item has that code any more; then it
// comes first, before the new item.
func (c *chunker) flush(ctx context.Context, last bool) error {
	codes := c.codes
	olds := map[string]bool{} // old codes of renames that were not asked for as items
	for _, r := range c.renames {
		if !c.has[r.old] {
			olds[r.old] = true
			codes = append(codes, r.old)
		}
	}
	var items []Item
	if len(codes) > 0 {
		var err error
		if items, err = c.d.Build(ctx, codes); err != nil {
			return err
		}
	}
	gone := map[string]bool{}
	for _, it := range items {
		if it.Deleted {
			gone[it.Code] = true
		}
	}
	out := make([]Item, 0, len(items)+len(c.renames))
	for _, r := range c.renames {
		if gone[r.old] {
			out = append(out, Item{Code: r.old, Deleted: true, Reason: r.reason, RenamedTo: r.new})
			gone[r.old] = false // once
		}
	}
	retired := map[string]bool{}
	for _, r := range c.renames {
		retired[r.old] = true
	}
	for _, it := range items {
		if olds[it.Code] || (it.Deleted && retired[it.Code]) {
			continue // sent above, or an old code that still names an item: nothing for it
		}
		out = append(out, it)
	}
	c.codes, c.renames = nil, nil
	clear(c.has)
	return c.send(out, last)
}

// mergeWindow is how far a merge's Deleted Document may be from its rename
// Comment: both are written in one transaction, but each with its own now().
func (d *Detector) mergeWindow() time.Duration { return d.cfg.Overlap }
