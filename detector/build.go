package detector

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/orderweave/erpsync/signer"
)

// Item is the whole current state of one ERPNext item, ready to send.
type Item struct {
	Code    string // tabItem.name; for a Deleted item, the code asked for
	Deleted bool   // no tabItem row matches the code
	// Content is the item entry without op and version, as canonical JSON
	// members; nil when Deleted. The detector does not touch it after Build:
	// the caller may Set members on a Clone.
	Content *signer.Object
}

// Field names of the item entry; extra fields must not reuse them.
func reservedField(name string) bool {
	switch name {
	case "op", "version", "item_code", "item_name", "item_group", "brand", "description", "stock_uom",
		"disabled", "is_stock_item", "is_sales_item", "has_variants", "variant_of", "end_of_life",
		"image", "barcodes", "prices", "stock", "stock_total", "modified":
		return true
	}
	return false
}

type extraField struct{ name, dataType, columnType string }

// Build reads the whole current state of each item code, one query per table
// per page of codes. A code names the item whose tabItem.name the database
// matches it with, by the table's collation (utf8mb4_unicode_ci on ERPNext:
// "item-001", "ITEM-001" and "Item-001 " are one item, and so are "CAFE-1" and
// "CAFÉ-1"); the item comes back under that name, with the prices, stock and
// barcodes whose item_code or parent the database matches with it. Codes that
// match no tabItem row come back Deleted, under the code asked for. The result
// is in the (sorted) order of codes, one entry per item.
func (d *Detector) Build(ctx context.Context, codes []string) ([]Item, error) {
	codes = uniqueSorted(codes)
	out := make([]Item, 0, len(codes))
	aliased := false
	for start := 0; start < len(codes); start += d.cfg.PageSize {
		end := min(start+d.cfg.PageSize, len(codes))
		page, a, err := d.buildPage(ctx, codes[start:end])
		if err != nil {
			return nil, err
		}
		aliased = aliased || a
		out = append(out, page...)
	}
	if aliased && len(codes) > d.cfg.PageSize {
		out = uniqueItems(out)
	}
	return out, nil
}

// uniqueItems drops the second and later builds of an item that codes on
// different pages named (say "ITEM-001" on one and "item-001" on the next).
// The names compared are tabItem names the database returned, so equal names
// are the same row.
func uniqueItems(items []Item) []Item {
	seen := make(map[string]bool, len(items))
	out := items[:0]
	for _, it := range items {
		if !it.Deleted {
			if seen[it.Code] {
				continue
			}
			seen[it.Code] = true
		}
		out = append(out, it)
	}
	return out
}

// page assembles the items of one page of codes. Each value is written as
// canonical JSON into one buffer (arena) as the rows arrive: no map per item
// or per row, and no value boxed in an interface. The lists (barcodes, prices,
// stock) are gathered for the whole page and sorted by item and then as the
// entry requires. At the end each item's members are copied into an object
// of exactly their size. Pages are reused (Detector.pages).
type page struct {
	d       *Detector
	codes   []string          // the tabItem name of each item, in the order tabItem returned them
	items   []itemAt          // where each item's members are
	index   map[string]int    // tabItem name -> position in items
	alias   map[string]string // code asked for -> the other tabItem name the database matched it with
	members []memberAt        // the scalar and extra members of every item, item by item
	entries []entryAt         // list entries being gathered
	prices  []priceRow
	bins    []binRow
	dec     map[string]string // exact DECIMAL text -> its JSON
	arena   []byte
}

// span is arena[start:end].
type span struct{ start, end int }

// memberAt is one member of an item: its name and where its value is.
type memberAt struct {
	name string
	span
}

// itemAt locates an item's members: members[first:last], and its lists (an
// empty span is an empty list).
type itemAt struct {
	first, last                     int
	barcodes, prices, stock, totals span
	listed                          bool // in buildPage's result already
}

// entryAt locates one list entry.
type entryAt struct {
	item int // position in page.items
	span
}

// maxPageArena is the largest buffer a page keeps for the next one.
const maxPageArena = 4 << 20

func (d *Detector) getPage() *page {
	if p, ok := d.pages.Get().(*page); ok {
		return p
	}
	return &page{d: d, index: map[string]int{}, alias: map[string]string{}, dec: map[string]string{}}
}

// putPage keeps p for the next page. Nothing built may alias it.
func (d *Detector) putPage(p *page) {
	if cap(p.arena) > maxPageArena {
		return
	}
	p.codes, p.items, p.members = p.codes[:0], p.items[:0], p.members[:0]
	p.entries, p.prices, p.bins, p.arena = p.entries[:0], p.prices[:0], p.bins[:0], p.arena[:0]
	clear(p.index)
	clear(p.alias)
	clear(p.dec)
	d.pages.Put(p)
}

// buildPage builds one page of codes: one item per tabItem row the codes
// match, under its name, and a Deleted item for each code that matches none.
// It reports whether the database matched a code or a child row with a name
// spelt otherwise; only then may another page of the same Build hold one of
// its items again.
func (d *Detector) buildPage(ctx context.Context, codes []string) ([]Item, bool, error) {
	if len(codes) == 0 {
		return nil, false, nil
	}
	p := d.getPage()
	defer d.putPage(p)
	if err := p.readItems(ctx, codes); err != nil {
		return nil, false, err
	}
	if err := p.resolve(ctx, codes); err != nil {
		return nil, false, err
	}
	if len(p.items) > 0 {
		// The names read, not the codes asked for: the database matches
		// child rows with them as it matched the codes.
		if err := p.readBarcodes(ctx, p.codes); err != nil {
			return nil, false, err
		}
		if err := p.readPrices(ctx, p.codes); err != nil {
			return nil, false, err
		}
		if err := p.readStock(ctx, p.codes); err != nil {
			return nil, false, err
		}
	}
	objects := make([]signer.Object, len(p.items)) // one allocation for the page's objects
	for i := range p.items {
		if err := p.assemble(i, &objects[i]); err != nil {
			return nil, false, err
		}
	}
	out := make([]Item, 0, len(codes))
	for _, c := range codes {
		i, ok := p.itemOf(c)
		switch {
		case !ok:
			out = append(out, Item{Code: c, Deleted: true})
		case !p.items[i].listed: // two codes may name one item
			p.items[i].listed = true
			out = append(out, Item{Code: p.codes[i], Content: &objects[i]})
		}
	}
	return out, len(p.alias) > 0, nil
}

// itemOf is the position of the item the database matched code with.
func (p *page) itemOf(code string) (int, bool) {
	if i, ok := p.index[code]; ok {
		return i, true
	}
	if name, ok := p.alias[code]; ok {
		i, ok := p.index[name]
		return i, ok
	}
	return 0, false
}

// assemble copies item i's members into o, sized to hold them exactly.
func (p *page) assemble(i int, o *signer.Object) error {
	it := p.items[i]
	lists := [...]struct {
		name string
		v    span
	}{{"barcodes", it.barcodes}, {"prices", it.prices}, {"stock", it.stock}, {"stock_total", it.totals}}
	n, size := it.last-it.first+len(lists), 0
	for _, m := range p.members[it.first:it.last] {
		size += len(m.name) + 3 + m.end - m.start
	}
	for _, l := range lists {
		size += len(l.name) + 5 + l.v.end - l.v.start
	}
	o.Grow(n, size)
	for _, l := range lists {
		v := p.arena[l.v.start:l.v.end]
		if len(v) == 0 {
			v = []byte("[]")
		}
		if err := o.SetRaw(l.name, v); err != nil {
			return err
		}
	}
	for _, m := range p.members[it.first:it.last] {
		if err := o.SetRaw(m.name, p.arena[m.start:m.end]); err != nil {
			return fmt.Errorf("item %s: %w", p.codes[i], err)
		}
	}
	return nil
}

// itemColumns are the tabItem columns every item entry carries, in the order
// readItems selects them.
func itemColumns() []string {
	return []string{"name", "item_name", "item_group", "brand", "description", "stock_uom", "disabled",
		"is_stock_item", "is_sales_item", "has_variants", "variant_of", "end_of_life", "image", "modified"}
}

// readItems reads the tabItem row each code matches and writes its members,
// under the row's name.
func (p *page) readItems(ctx context.Context, codes []string) error {
	d := p.d
	cols := itemColumns()
	base := len(cols)
	for _, f := range d.extra {
		cols = append(cols, f.name)
	}
	q := "SELECT `" + strings.Join(cols, "`, `") + "` FROM `tabItem` WHERE name IN (" + placeholders(len(codes)) + ")"
	rows, err := d.db.QueryContext(ctx, q, anySlice(codes)...)
	if err != nil {
		return fmt.Errorf("read items %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	p.arena = slices.Grow(p.arena, 1024*len(codes))
	p.members = slices.Grow(p.members, (len(cols)-1)*len(codes))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read items %s: %w", codeRange(codes), err)
		}
		code := vals[0].String
		if _, dup := p.index[code]; dup {
			continue
		}
		first := len(p.members)
		image, hasImage := d.imageOf(vals[12])
		modified, hasModified := d.rfc3339Of(vals[13])
		eol, hasEOL := dateOf(vals[11])
		err := p.stringMember(code, "item_code", code, true)
		for _, m := range []struct {
			name string
			v    sql.NullString
		}{{"item_name", vals[1]}, {"item_group", vals[2]}, {"brand", vals[3]}, {"description", vals[4]}, {"stock_uom", vals[5]}, {"variant_of", vals[10]}} {
			if err == nil {
				err = p.stringMember(code, m.name, m.v.String, m.v.Valid && m.v.String != "")
			}
		}
		if err == nil {
			err = p.stringMember(code, "end_of_life", eol, hasEOL)
		}
		if err == nil {
			err = p.stringMember(code, "image", image, hasImage)
		}
		if err == nil {
			err = p.stringMember(code, "modified", modified, hasModified)
		}
		if err != nil {
			return err
		}
		p.boolMember("disabled", check(vals[6]))
		p.boolMember("is_stock_item", check(vals[7]))
		p.boolMember("is_sales_item", check(vals[8]))
		p.boolMember("has_variants", check(vals[9]))
		for i, ef := range d.extra {
			v, err := d.extraValue(code, ef, vals[base+i])
			if err != nil {
				return err
			}
			start := len(p.arena)
			if p.arena, err = signer.AppendValue(p.arena, v); err != nil {
				return fmt.Errorf("item %s: %s: %w", code, ef.name, err)
			}
			p.members = append(p.members, memberAt{ef.name, span{start, len(p.arena)}})
		}
		p.index[code] = len(p.items)
		p.items = append(p.items, itemAt{first: first, last: len(p.members)})
		p.codes = append(p.codes, code)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read items %s: %w", codeRange(codes), err)
	}
	return nil
}

// stringMember adds a member holding the JSON string s, or null when !ok.
func (p *page) stringMember(code, name, s string, ok bool) error {
	start := len(p.arena)
	if err := p.appendString(code, name, s, ok); err != nil {
		return err
	}
	p.members = append(p.members, memberAt{name, span{start, len(p.arena)}})
	return nil
}

func (p *page) boolMember(name string, b bool) {
	start := len(p.arena)
	p.arena = strconv.AppendBool(p.arena, b)
	p.members = append(p.members, memberAt{name, span{start, len(p.arena)}})
}

// appendString appends the JSON string s, or null when !ok. field names the
// value in an error.
func (p *page) appendString(code, field, s string, ok bool) error {
	if !ok {
		p.arena = append(p.arena, "null"...)
		return nil
	}
	var err error
	if p.arena, err = signer.AppendString(p.arena, s); err != nil {
		return fmt.Errorf("item %s: %s: %w", code, field, err)
	}
	return nil
}

// appendName appends `"name":` (or `,"name":` when comma) for a name that is
// plain JSON text.
func (p *page) appendName(name string, comma bool) {
	if comma {
		p.arena = append(p.arena, ',')
	}
	p.arena = append(p.arena, '"')
	p.arena = append(p.arena, name...)
	p.arena = append(p.arena, '"', ':')
}

// appendTextMember appends `,"name":` and a text column's value: null when
// NULL or "".
func (p *page) appendTextMember(code, field, name string, v sql.NullString, comma bool) error {
	p.appendName(name, comma)
	return p.appendString(code, field, v.String, v.Valid && v.String != "")
}

// appendDecimal appends the JSON of a DECIMAL column's text (null for NULL),
// remembering exact values for the page: quantities and prices repeat. An
// inexact one is converted (and logged) for each item and field it appears in.
func (p *page) appendDecimal(code, field string, v sql.NullString) error {
	if !v.Valid {
		p.arena = append(p.arena, "null"...)
		return nil
	}
	if js, ok := p.dec[v.String]; ok {
		p.arena = append(p.arena, js...)
		return nil
	}
	out, exact, err := p.d.convertDecimal(code, field, v.String)
	if err != nil {
		return err
	}
	start := len(p.arena)
	if p.arena, err = signer.AppendValue(p.arena, out); err != nil {
		return fmt.Errorf("item %s: %s: %w", code, field, err)
	}
	if exact {
		p.dec[v.String] = string(p.arena[start:])
	}
	return nil
}

// lists writes the entries of each item, sorted by item, as one JSON array
// per item, and calls set with it.
func (p *page) lists(entries []entryAt, set func(it *itemAt, list span)) {
	for start := 0; start < len(entries); {
		item := entries[start].item
		list := span{start: len(p.arena)}
		p.arena = append(p.arena, '[')
		end := start
		for ; end < len(entries) && entries[end].item == item; end++ {
			if end > start {
				p.arena = append(p.arena, ',')
			}
			p.arena = append(p.arena, p.arena[entries[end].start:entries[end].end]...)
		}
		p.arena = append(p.arena, ']')
		list.end = len(p.arena)
		set(&p.items[item], list)
		start = end
	}
}

// readBarcodes writes the barcodes of the items named codes (tabItem names),
// each under the item the database matches its parent with.
func (p *page) readBarcodes(ctx context.Context, codes []string) error {
	q := "SELECT parent, barcode, barcode_type, uom FROM `tabItem Barcode` WHERE parent IN (" + placeholders(len(codes)) +
		") AND parenttype = 'Item' AND (parentfield = 'barcodes' OR parentfield IS NULL) ORDER BY parent, idx, barcode"
	rows, err := p.d.db.QueryContext(ctx, q, anySlice(codes)...)
	if err != nil {
		return fmt.Errorf("read barcodes of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	entries := p.entries[:0]
	var strays []stray
	// Declared once: what Scan writes to escapes to the heap.
	var parent string
	var barcode, typ, uom sql.NullString
	for rows.Next() {
		if err := rows.Scan(&parent, &barcode, &typ, &uom); err != nil {
			return fmt.Errorf("read barcodes of %s: %w", codeRange(codes), err)
		}
		if !barcode.Valid || barcode.String == "" {
			continue
		}
		i, ok := p.index[parent]
		if !ok {
			i, strays = -1, append(strays, stray{len(entries), parent})
		}
		e := entryAt{item: i, span: span{start: len(p.arena)}}
		// Members in JCS order.
		p.arena = append(p.arena, '{')
		err := p.appendTextMember(parent, "barcodes.barcode", "barcode", barcode, false)
		if err == nil {
			err = p.appendTextMember(parent, "barcodes.barcode_type", "barcode_type", typ, true)
		}
		if err == nil {
			err = p.appendTextMember(parent, "barcodes.uom", "uom", uom, true)
		}
		if err != nil {
			return err
		}
		p.arena = append(p.arena, '}')
		e.end = len(p.arena)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read barcodes of %s: %w", codeRange(codes), err)
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { entries[row].item = item }); err != nil {
			return fmt.Errorf("read barcodes of %s: %w", codeRange(codes), err)
		}
		entries = slices.DeleteFunc(entries, func(e entryAt) bool { return e.item < 0 })
	}
	// Stable: each item keeps the query's order (idx, barcode).
	slices.SortStableFunc(entries, func(a, b entryAt) int { return a.item - b.item })
	p.lists(entries, func(it *itemAt, l span) { it.barcodes = l })
	p.entries = entries
	return nil
}

// priceRow is one price entry and the key it is sorted by within its item.
type priceRow struct {
	entryAt
	key [7]string // price list, customer, supplier, batch, uom, valid_from, name
}

// readPrices writes the prices of the items named codes (tabItem names), each
// under the item the database matches its item_code with.
func (p *page) readPrices(ctx context.Context, codes []string) error {
	d := p.d
	q := "SELECT item_code, name, price_list, currency, price_list_rate, uom, valid_from, valid_upto, customer, supplier, batch_no " +
		"FROM `tabItem Price` WHERE item_code IN (" + placeholders(len(codes)) + ")"
	args := anySlice(codes)
	if len(d.cfg.PriceLists) > 0 {
		q += " AND price_list IN (" + placeholders(len(d.cfg.PriceLists)) + ")"
		args = append(args, anySlice(d.cfg.PriceLists)...)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	prices := p.prices[:0]
	var strays []stray
	// Declared once: what Scan writes to escapes to the heap.
	var code, name string
	var pl, cur, rate, uom, from, upto, cust, supp, batch sql.NullString
	for rows.Next() {
		if err := rows.Scan(&code, &name, &pl, &cur, &rate, &uom, &from, &upto, &cust, &supp, &batch); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
		i, ok := p.index[code]
		if !ok {
			i, strays = -1, append(strays, stray{len(prices), code})
		}
		r := priceRow{entryAt: entryAt{item: i, span: span{start: len(p.arena)}},
			key: [7]string{pl.String, cust.String, supp.String, batch.String, uom.String, from.String, name}}
		validFrom, hasFrom := dateOf(from)
		validUpto, hasUpto := dateOf(upto)
		// Members in JCS order.
		p.arena = append(p.arena, '{')
		err := p.appendTextMember(code, "prices.batch_no", "batch_no", batch, false)
		if err == nil {
			err = p.appendTextMember(code, "prices.currency", "currency", cur, true)
		}
		if err == nil {
			err = p.appendTextMember(code, "prices.customer", "customer", cust, true)
		}
		if err == nil {
			err = p.appendTextMember(code, "prices.price_list", "price_list", pl, true)
		}
		if err == nil {
			p.appendName("rate", true)
			err = p.appendDecimal(code, "prices.rate", rate)
		}
		if err == nil {
			err = p.appendTextMember(code, "prices.supplier", "supplier", supp, true)
		}
		if err == nil {
			err = p.appendTextMember(code, "prices.uom", "uom", uom, true)
		}
		if err == nil {
			p.appendName("valid_from", true)
			err = p.appendString(code, "prices.valid_from", validFrom, hasFrom)
		}
		if err == nil {
			p.appendName("valid_upto", true)
			err = p.appendString(code, "prices.valid_upto", validUpto, hasUpto)
		}
		if err != nil {
			return err
		}
		p.arena = append(p.arena, '}')
		r.end = len(p.arena)
		prices = append(prices, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { prices[row].item = item }); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
		prices = slices.DeleteFunc(prices, func(r priceRow) bool { return r.item < 0 })
	}
	slices.SortFunc(prices, func(a, b priceRow) int {
		if a.item != b.item {
			return a.item - b.item
		}
		return slices.Compare(a.key[:], b.key[:])
	})
	entries := p.entries[:0]
	for _, r := range prices {
		entries = append(entries, r.entryAt)
	}
	p.lists(entries, func(it *itemAt, l span) { it.prices = l })
	p.prices, p.entries = prices, entries
	return nil
}

// stockQtys are the Bin quantities sent per warehouse and summed in
// stock_total, in JCS order of their names, with the field names decimal
// reports them under.
func stockQtys() [numStockQtys]stockQty {
	return [numStockQtys]stockQty{
		{"actual_qty", "stock.actual_qty", "stock_total.actual_qty"},
		{"projected_qty", "stock.projected_qty", "stock_total.projected_qty"},
		{"reserved_qty", "stock.reserved_qty", "stock_total.reserved_qty"},
	}
}

const numStockQtys = 3

type stockQty struct{ name, field, totalField string }

// binRow is one Bin of an item, its quantities in stockQtys order.
type binRow struct {
	item      int
	warehouse string
	qty       [numStockQtys]sql.NullString
}

// readStock writes the stock and stock totals of the items named codes
// (tabItem names), each Bin under the item the database matches its
// item_code with.
func (p *page) readStock(ctx context.Context, codes []string) error {
	d := p.d
	q := "SELECT item_code, warehouse, actual_qty, projected_qty, reserved_qty FROM `tabBin` WHERE item_code IN (" +
		placeholders(len(codes)) + ")"
	args := anySlice(codes)
	if len(d.cfg.Warehouses) > 0 {
		q += " AND warehouse IN (" + placeholders(len(d.cfg.Warehouses)) + ")"
		args = append(args, anySlice(d.cfg.Warehouses)...)
	}
	q += " ORDER BY item_code, warehouse"
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	bins := p.bins[:0]
	var strays []stray
	// Declared once: what Scan writes to escapes to the heap.
	var code string
	var b binRow
	var wh sql.NullString
	for rows.Next() {
		if err := rows.Scan(&code, &wh, &b.qty[0], &b.qty[1], &b.qty[2]); err != nil {
			return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
		}
		i, ok := p.index[code]
		if !ok {
			i, strays = -1, append(strays, stray{len(bins), code})
		}
		b.item, b.warehouse = i, wh.String
		bins = append(bins, b)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { bins[row].item = item }); err != nil {
			return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
		}
		bins = slices.DeleteFunc(bins, func(b binRow) bool { return b.item < 0 })
	}
	p.bins = bins
	slices.SortStableFunc(bins, func(a, b binRow) int {
		if a.item != b.item {
			return a.item - b.item
		}
		return strings.Compare(a.warehouse, b.warehouse)
	})
	qtys := stockQtys()
	entries := p.entries[:0]
	for item := range p.items {
		code := p.codes[item]
		var totals [numStockQtys]decimalSum
		for ; len(bins) > 0 && bins[0].item == item; bins = bins[1:] {
			b := &bins[0]
			e := entryAt{item: item, span: span{start: len(p.arena)}}
			p.arena = append(p.arena, '{')
			for i, qty := range qtys {
				p.appendName(qty.name, i > 0)
				if err := p.appendDecimal(code, qty.field, b.qty[i]); err != nil {
					return err
				}
				if b.qty[i].Valid {
					totals[i].add(b.qty[i].String)
				}
			}
			p.appendName("warehouse", true)
			if err := p.appendString(code, "stock.warehouse", b.warehouse, true); err != nil {
				return err
			}
			p.arena = append(p.arena, '}')
			e.end = len(p.arena)
			entries = append(entries, e)
		}
		it := &p.items[item]
		it.totals.start = len(p.arena)
		p.arena = append(p.arena, '{')
		for i, qty := range qtys {
			p.appendName(qty.name, i > 0)
			if err := p.appendDecimal(code, qty.totalField, sql.NullString{String: totals[i].text(), Valid: true}); err != nil {
				return err
			}
		}
		p.arena = append(p.arena, '}')
		it.totals.end = len(p.arena)
	}
	p.lists(entries, func(it *itemAt, l span) { it.stock = l })
	p.entries = entries
	return nil
}

// decimalSum adds DECIMAL texts exactly, as big.Rat does, ignoring texts
// big.Rat cannot parse. While every text is plain ([-]digits[.digits], at most
// 9 digits on either side of the point) and the sum fits, it adds integers
// scaled by 10^9; then it goes on in big.Rat.
type decimalSum struct {
	scaled int64    // the sum × 10^9, while rat is nil
	rat    *big.Rat // the sum, once a text or the sum did not fit scaled
}

const decimalScale = 1_000_000_000

func (s *decimalSum) add(v string) {
	if s.rat == nil {
		if x, ok := parseScaled(v); ok {
			if sum := s.scaled + x; (x >= 0) == (sum >= s.scaled) { // no overflow
				s.scaled = sum
				return
			}
		}
		s.rat = new(big.Rat).SetFrac(big.NewInt(s.scaled), big.NewInt(decimalScale))
	}
	var r big.Rat
	if _, ok := r.SetString(v); ok {
		s.rat.Add(s.rat, &r)
	}
}

// text is the sum with 9 decimals, as big.Rat's FloatString(9) writes it.
func (s *decimalSum) text() string {
	if s.rat != nil {
		return s.rat.FloatString(9)
	}
	u := uint64(s.scaled)
	b := make([]byte, 0, 32)
	if s.scaled < 0 {
		u = -u
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, u/decimalScale, 10)
	frac := strconv.AppendUint(make([]byte, 0, 10), decimalScale+u%decimalScale, 10) // "1" and 9 digits
	b = append(b, '.')
	return string(append(b, frac[1:]...))
}

// parseScaled reads [-]digits[.digits], with 1 to 9 digits before the point
// and 1 to 9 after it, as an integer scaled by 10^9.
func parseScaled(v string) (int64, bool) {
	neg := strings.HasPrefix(v, "-")
	if neg {
		v = v[1:]
	}
	whole, frac, dot := strings.Cut(v, ".")
	if len(whole) == 0 || len(whole) > 9 || len(frac) > 9 || (dot && len(frac) == 0) {
		return 0, false
	}
	var n int64
	for _, c := range []byte(whole) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	scale := int64(decimalScale)
	for _, c := range []byte(frac) {
		if c < '0' || c > '9' {
			return 0, false
		}
		scale /= 10
		n = n*10 + int64(c-'0')
	}
	n *= scale
	if neg {
		n = -n
	}
	return n, true
}

// decimal turns a DECIMAL column's text into a JSON value without losing digits.
func (d *Detector) decimal(code, field string, v sql.NullString) (any, error) {
	if !v.Valid {
		return nil, nil
	}
	out, _, err := d.convertDecimal(code, field, v.String)
	return out, err
}

// convertDecimal is signer.Decimal for field of item code, logging a value
// that a JSON number cannot carry exactly (it is sent as a string).
func (d *Detector) convertDecimal(code, field, value string) (any, bool, error) {
	out, exact, err := signer.Decimal(value)
	if err != nil {
		return nil, false, fmt.Errorf("item %s: %s: %w", code, field, err)
	}
	if !exact {
		d.logger.Warn("decimal has more digits than a JSON number carries exactly; sent as a string",
			"item", code, "field", field, "value", value)
	}
	return out, exact, nil
}

func (d *Detector) extraValue(code string, f extraField, v sql.NullString) (any, error) {
	if !v.Valid {
		return nil, nil
	}
	switch f.dataType {
	case "decimal":
		return d.decimal(code, f.name, v)
	case "tinyint":
		return check(v), nil
	case "int", "smallint", "mediumint", "bigint":
		if f.columnType == "int(1)" {
			return check(v), nil
		}
		if _, err := strconv.ParseInt(v.String, 10, 64); err != nil {
			return nil, fmt.Errorf("item %s: %s: integer %q: %w", code, f.name, v.String, err)
		}
		return json.Number(v.String), nil
	case "float", "double":
		return d.decimal(code, f.name, v)
	case "date":
		return date(v), nil
	case "datetime", "timestamp":
		return d.rfc3339(v), nil
	default:
		return text(v), nil
	}
}

// imageOf makes a site-relative file path absolute with erp.site_url. It
// reports false when there is no image.
func (d *Detector) imageOf(v sql.NullString) (string, bool) {
	p := strings.TrimSpace(v.String)
	if p == "" {
		return "", false
	}
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") || d.cfg.SiteURL == "" {
		return p, true
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.Contains(p, "%") {
		p = (&url.URL{Path: p}).EscapedPath()
	}
	return strings.TrimRight(d.cfg.SiteURL, "/") + p, true
}

// rfc3339Of turns a naive `modified` in the site's zone into RFC 3339 with the
// site's UTC offset. It reports false for NULL, "" and the zero date.
func (d *Detector) rfc3339Of(v sql.NullString) (string, bool) {
	if !v.Valid || v.String == "" || strings.HasPrefix(v.String, "0000-00-00") {
		return "", false
	}
	s := normModified(v.String)
	if out, ok := d.fastRFC3339(s); ok {
		return out, true
	}
	t, err := time.ParseInLocation(ModifiedLayout, s, d.loc)
	if err != nil {
		return v.String, true
	}
	return t.Format(rfc3339Layout), true
}

// rfc3339 is rfc3339Of as a JSON value: nil for none.
func (d *Detector) rfc3339(v sql.NullString) any {
	if s, ok := d.rfc3339Of(v); ok {
		return s
	}
	return nil
}

const rfc3339Layout = "2006-01-02T15:04:05.999999Z07:00"

// fastRFC3339 is time.ParseInLocation(ModifiedLayout, s, d.loc) followed by
// Format(rfc3339Layout), without interpreting layouts, for a well-formed s
// whose wall clock exists in the site's zone. It reports false for anything
// else (malformed, out of range, or in a daylight-saving gap), which the slow
// path handles.
func (d *Detector) fastRFC3339(s string) (string, bool) {
	k, ok := modifiedKey(s)
	if !ok {
		return "", false
	}
	us := int(k % 1_000_000)
	y, mo, day := atoiFixed(s[0:4]), time.Month(atoiFixed(s[5:7])), atoiFixed(s[8:10])
	h, mi, sec := atoiFixed(s[11:13]), atoiFixed(s[14:16]), atoiFixed(s[17:19])
	t := time.Date(y, mo, day, h, mi, sec, us*1000, d.loc)
	if t.Year() != y || t.Month() != mo || t.Day() != day || t.Hour() != h || t.Minute() != mi || t.Second() != sec {
		return "", false // day beyond the month's end, or a wall clock the zone skips
	}
	b := make([]byte, 0, len(rfc3339Layout)+6)
	b = append(b, s[:10]...)
	b = append(b, 'T')
	b = append(b, s[11:19]...)
	if frac := strings.TrimRight(s[20:], "0"); frac != "" {
		b = append(b, '.')
		b = append(b, frac...)
	}
	_, offset := t.Zone()
	// As time.Format writes Z07:00: whole minutes, seconds dropped.
	zone := offset / 60
	switch {
	case offset == 0:
		return string(append(b, 'Z')), true
	case zone < 0:
		b = append(b, '-')
		zone = -zone
	default:
		b = append(b, '+')
	}
	b = append(b, byte('0'+zone/600), byte('0'+zone/60%10), ':', byte('0'+zone%60/10), byte('0'+zone%10))
	return string(b), zone/60 < 100
}

// atoiFixed reads a run of ASCII digits already checked by modifiedKey.
func atoiFixed(s string) int {
	n := 0
	for _, c := range []byte(s) {
		n = n*10 + int(c-'0')
	}
	return n
}

func text(v sql.NullString) any {
	if !v.Valid || v.String == "" {
		return nil
	}
	return v.String
}

func check(v sql.NullString) bool {
	switch v.String { // a Check column's usual texts
	case "0":
		return false
	case "1":
		return true
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(v.String), 64)
	return err == nil && n != 0
}

// dateOf is the date part of a DATE or DATETIME column's text. It reports
// false for NULL, "" and the zero date.
func dateOf(v sql.NullString) (string, bool) {
	if !v.Valid || v.String == "" || strings.HasPrefix(v.String, "0000-00-00") {
		return "", false
	}
	if len(v.String) > 10 {
		return v.String[:10], true
	}
	return v.String, true
}

// date is dateOf as a JSON value: nil for none.
func date(v sql.NullString) any {
	if s, ok := dateOf(v); ok {
		return s
	}
	return nil
}

func placeholders(n int) string {
	if n <= 0 {
		return "NULL"
	}
	return strings.Repeat("?, ", n-1) + "?"
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func uniqueSorted(codes []string) []string {
	out := append([]string(nil), codes...)
	sort.Strings(out)
	j := 0
	for i, c := range out {
		if c == "" || (i > 0 && c == out[i-1]) {
			continue
		}
		out[j] = c
		j++
	}
	return out[:j]
}

// codeRange names a page of codes in an error.
func codeRange(codes []string) string {
	switch len(codes) {
	case 0:
		return "(none)"
	case 1:
		return codes[0]
	default:
		return fmt.Sprintf("%s..%s (%d items)", codes[0], codes[len(codes)-1], len(codes))
	}
}
