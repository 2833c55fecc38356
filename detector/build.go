package detector

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orderweave/erpsync/signer"
)

// Item is the whole current state of one ERPNext item, ready to send.
type Item struct {
	Code    string // tabItem.name; for a Deleted item, the code asked for
	Deleted bool   // no tabItem row matches the code, or the Selection does not select it (Reason)
	// Content is the item entry without op and version, as canonical JSON
	// members; nil when Deleted or when Problem is set. The detector does not
	// touch it after Build: the caller may Set members on a Clone.
	Content *signer.Object
	// Problem, when not nil, says why the item exists but cannot be sent:
	// a value in one of its rows that no JSON value carries as the protocol
	// requires (see BuildError). Content is then nil and Deleted false. It
	// holds up nothing else: the other items of the page are built and the
	// cursor moves over the item's rows as over any other. The caller sends
	// nothing for it (neither an upsert nor a delete: the item exists),
	// keeps the state it last sent, and reports the item and the column; the
	// item is built again on its next change and by every reconciliation
	// sweep, and comes back without Problem once its data is fixed.
	Problem *BuildError
	// Reason says why a Deleted item is sent as a delete: "" when its
	// tabItem row is gone (sent as "deleted"), or one of the Reason*
	// constants. RenamedTo is the item's new code for ReasonRenamed and the
	// surviving item's for ReasonMerged.
	Reason    string
	RenamedTo string
	// ChangesOn is the next site date (YYYY-MM-DD) after the date the item
	// was built on when what ERPNext would sell changes with no row changing:
	// a price's validity window opens or closes (valid_from, valid_upto + 1
	// day, of the item's and, for a variant, its template's selected rows),
	// or end_of_life is reached. "" when no such date is ahead.
	ChangesOn string
	// ReadAt is the local clock just before the first query of the page
	// the item was built in: its state is what the database held at or
	// after it. Zero for an item not built from the database (a delete
	// read from Deleted Document or a rename).
	ReadAt time.Time
}

// Reasons a Deleted item gives (PROTOCOL.md, Delete).
const (
	ReasonDeleted    = "deleted"    // the item is gone
	ReasonRenamed    = "renamed"    // RenamedTo holds the new code
	ReasonMerged     = "merged"     // RenamedTo holds the surviving item
	ReasonDeselected = "deselected" // it exists but the settings no longer select it
)

// BuildError says why one item cannot be built: the value of one column of
// one of its rows. Build encodes every value it can exactly (see Build), so
// what remains is rare: a tabItem.name that is not valid UTF-8 (an item code
// is the item's identity and is never sent with bytes replaced), or numeric
// text that is no finite number. The value is the site's catalogue data,
// never a credential; it is shown quoted and cut to 64 bytes.
type BuildError struct {
	Column string // the table and column, as "tabItem.name" or "tabItem Price.price_list_rate"
	Value  string // the value read, quoted as strconv.Quote does, from at most its first 64 bytes ("…" after the quote when cut)
	Reason string // what is wrong with the value, and how to fix it where the site can
}

// Error is `<column> <value>: <reason>`.
func (e *BuildError) Error() string { return e.Column + " " + e.Value + ": " + e.Reason }

// buildError is the BuildError of value in column.
func buildError(column, value, reason string) *BuildError {
	return &BuildError{Column: column, Value: quoteValue(value), Reason: reason}
}

// maxShownValue is how many bytes of a value a BuildError or a log line shows.
const maxShownValue = 64

// quoteValue quotes at most the first maxShownValue bytes of v (cut at a
// character boundary when v is valid UTF-8), followed by "…" when cut.
func quoteValue(v string) string {
	return strconv.Quote(shownValue(v)) + cutMark(v)
}

// shownValue is at most the first maxShownValue bytes of v, cut before a
// UTF-8 character that does not fit.
func shownValue(v string) string {
	if len(v) <= maxShownValue {
		return v
	}
	i := maxShownValue
	for j := i; j > maxShownValue-utf8.UTFMax && j > 0; j-- {
		if utf8.RuneStart(v[j]) {
			i = j
			break
		}
	}
	return v[:i]
}

func cutMark(v string) string {
	if len(v) > maxShownValue {
		return "…"
	}
	return ""
}

// Field names of the item entry; extra fields must not reuse them.
func reservedField(name string) bool {
	switch name {
	case "op", "version", "item_code", "item_name", "item_group", "brand", "description", "stock_uom",
		"disabled", "is_stock_item", "is_sales_item", "has_variants", "variant_of", "end_of_life",
		"image", "barcodes", "prices", "stock", "stock_total", "modified", "sales_uom", "uoms", "attributes",
		"images", "effective_prices", "website", "reason", "renamed_to":
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
//
// Values are encoded as PROTOCOL.md says, exactly, and no value fails more
// than its own item:
//
//   - DECIMAL: a JSON number when a double carries the value exactly
//     ("19.990000000" is 19.99), else the exact decimal as a string, logged
//     (signer.Decimal).
//   - FLOAT and DOUBLE (extra fields), as read in plain or exponent notation:
//     the same ("1e+20" is the number 100000000000000000000, "-2.5e-07" is
//     -2.5e-7; signer.Float). NaN and the infinities, which MariaDB does not
//     store, make a Problem.
//   - Integers (extra fields; int(1) and tinyint are Checks, booleans): a
//     number while |n| <= 2^53, beyond which doubles skip integers; else the
//     exact digits as a string, logged (BIGINT UNSIGNED reaches 2^64-1).
//   - DATE: YYYY-MM-DD. NULL, "" and MariaDB's zero date 0000-00-00 are null,
//     as an empty value is; so is a date with a zero month or day or one that
//     names no calendar day (2024-00-10, 2024-02-30: MariaDB stores them
//     under a lax sql_mode), which no YYYY-MM-DD carries, logged.
//   - DATETIME and TIMESTAMP: RFC 3339 with the site's offset; null for the
//     same values as DATE and for a time of day past 23:59:59, logged (a wall
//     clock in a daylight-saving gap is read as time.Date reads it).
//   - Text: as stored, null when empty. Bytes that are not UTF-8 (MariaDB's
//     utf8mb4 accepts UTF-16 surrogates, which UTF-8 forbids, and binary
//     columns hold anything) are sent one U+FFFD each, as encoding/json does,
//     logged; except in tabItem.name: an item code is the item's identity
//     (the receiver's key, and what every later build and delete names), and
//     a replaced one would name no row, so such an item is a Problem (rename
//     it).
//
// An item with a value that cannot be sent comes back with Problem set (see
// Item). Build fails only for what is not about one item's values: a query
// that failed, a connection that dropped, a cancelled ctx.
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
// The names compared are tabItem names the database returned (those of items
// built, with a Problem or deselected), so equal names are the same row.
func uniqueItems(items []Item) []Item {
	seen := make(map[string]bool, len(items))
	out := items[:0]
	for _, it := range items {
		if !it.Deleted || it.Reason == ReasonDeselected {
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
	d          *Detector
	codes      []string          // the tabItem name of each item, in the order tabItem returned them
	items      []itemAt          // where each item's members are
	index      map[string]int    // tabItem name -> position in items
	alias      map[string]string // code asked for -> the other tabItem name the database matched it with
	members    []memberAt        // the scalar and extra members of every item, item by item
	entries    []entryAt         // list entries being gathered
	prices     []priceRow
	bins       []binRow
	children   childRows         // the rows of readChildren (build_children.go)
	warehouses []stockWarehouse  // the selected warehouses of readStock (build_stock.go)
	codeArgs   []any             // the names the storefront readers are given, as query arguments (codeArgsOf)
	dec        map[string]string // exact DECIMAL text -> its JSON
	arena      []byte
	utcNow     string  // UTC_TIMESTAMP(6) as readItems read it; "" when it read no row
	fresh      bool    // made by getPage, not reserved yet
	order      []int32 // the order assemble sets members in (memberOrder)
	orderOf    int     // how many scalar members order is for; -1 for none

	// quotes are the items' own selected price rows, templateQuotes those of
	// the templates of the page's variants (effective.go).
	quotes, templateQuotes []quoteRow
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
	effective                       span // effective_prices, an object ({} when empty)
	uoms, attributes, images        span
	website                         span        // null when empty
	listed                          bool        // in buildPage's result already
	problem                         *BuildError // why the item cannot be sent; its members are then unused
	deselected                      bool        // the settings do not select it (Selection): sent as a delete, no members, no child rows read
	changesOn                       string      // Item.ChangesOn (effective.go)
	itemFacts
}

// itemFacts are values of an item's tabItem row that other tables' readers
// of the page need (prices, stock, images).
type itemFacts struct {
	stockUOM, salesUOM string // "" when empty
	variantOf          string // the template's code; "" for an item that is no variant
	endOfLife          string // YYYY-MM-DD, or "" when none
	image              string // tabItem.image as stored, trimmed
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
	return &page{d: d, index: map[string]int{}, alias: map[string]string{}, dec: map[string]string{}, orderOf: -1, fresh: true}
}

// Room a page makes for each code (reserve): the arena bytes of a sample
// item with prices, stock and barcodes are about 1.8 KB.
const (
	arenaPerItem = 2560
	rowsPerItem  = 3 // price, Bin, barcode rows and list entries
)

// reserve makes room in p's buffers for a page of n codes, so that they
// grow at most rarely while it is built: a page that the pool dropped (it
// keeps pages only until the next garbage collections) starts empty, and
// growing the arena by doubling copies it over and over. The arena reserved
// stays within what putPage keeps.
func (p *page) reserve(n int) {
	if p.fresh { // its index is empty yet: sized once
		p.index, p.fresh = make(map[string]int, n), false
	}
	p.arena = slices.Grow(p.arena, min(arenaPerItem*n, maxPageArena))
	p.entries = slices.Grow(p.entries, rowsPerItem*n)
	p.prices = slices.Grow(p.prices, rowsPerItem*n)
	p.quotes = slices.Grow(p.quotes, rowsPerItem*n)
	p.bins = slices.Grow(p.bins, rowsPerItem*n)
	p.children.barcodes = slices.Grow(p.children.barcodes, rowsPerItem*n)
}

// putPage keeps p for the next page. Nothing built may alias it.
func (d *Detector) putPage(p *page) {
	if cap(p.arena) > maxPageArena {
		return
	}
	p.codes, p.items, p.members = p.codes[:0], p.items[:0], p.members[:0]
	p.entries, p.prices, p.bins, p.arena = p.entries[:0], p.prices[:0], p.bins[:0], p.arena[:0]
	p.children.reset()
	p.warehouses = p.warehouses[:0]
	p.orderOf, p.utcNow = -1, "" // computed again for each page
	clear(p.codeArgs)
	p.codeArgs = p.codeArgs[:0]
	p.quotes, p.templateQuotes = p.quotes[:0], p.templateQuotes[:0]
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
	p.reserve(len(codes))
	readAt := time.Now()
	if err := p.readItems(ctx, codes); err != nil {
		return nil, false, err
	}
	if err := p.resolve(ctx, codes); err != nil {
		return nil, false, err
	}
	// The names read, not the codes asked for: the database matches child
	// rows with them as it matched the codes. Deselected items have none.
	if names := p.selectedNames(); len(names) > 0 {
		if err := p.readPrices(ctx, names); err != nil {
			return nil, false, err
		}
		if err := p.readStock(ctx, names); err != nil {
			return nil, false, err
		}
		if err := p.readChildren(ctx, names); err != nil {
			return nil, false, err
		}
	}
	out, err := p.result(codes)
	if err != nil {
		return nil, false, err
	}
	for i := range out {
		out[i].ReadAt = readAt
	}
	return out, len(p.alias) > 0, nil
}

// result assembles the page's items, in the order of codes: one per item a
// code names, and a Deleted item for each code that names none.
func (p *page) result(codes []string) ([]Item, error) {
	objects := make([]signer.Object, len(p.items)) // one allocation for the page's objects
	for i := range p.items {
		if p.items[i].problem != nil || p.items[i].deselected {
			continue
		}
		if err := p.assemble(i, &objects[i]); err != nil {
			return nil, err
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
			switch it := &p.items[i]; {
			case it.deselected: // before a problem: a deselected item is not built
				out = append(out, Item{Code: p.codes[i], Deleted: true, Reason: ReasonDeselected})
			case it.problem != nil:
				out = append(out, Item{Code: p.codes[i], Problem: it.problem})
			default:
				out = append(out, Item{Code: p.codes[i], Content: &objects[i], ChangesOn: it.changesOn})
			}
		}
	}
	return out, nil
}

// rowItem is the position of the item whose name is owner, a child row's
// item code as read, and that code as a string: the item's name when there
// is one (the same bytes, not copied again), else a copy of owner, with -1.
func (p *page) rowItem(owner sql.RawBytes) (int, string) {
	if i, ok := p.index[string(owner)]; ok {
		return i, p.codes[i]
	}
	return -1, string(owner)
}

// setProblem makes pr item i's problem, unless it has one already: one is
// enough to hold the item back, and the first found is reported.
func (p *page) setProblem(i int, pr *BuildError) {
	if p.items[i].problem == nil {
		p.items[i].problem = pr
	}
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

// listMember is a list member of the item entry (itemAt's spans), and the
// value it has when empty.
type listMember struct{ name, empty string }

// listMembers are the item entry's list members, in the order of listSpans.
func listMembers() [numLists]listMember {
	return [numLists]listMember{
		{"barcodes", "[]"}, {"prices", "[]"}, {"stock", "[]"}, {"stock_total", "{}"}, {"effective_prices", "{}"},
		{"uoms", "[]"}, {"attributes", "[]"}, {"images", "[]"}, {"website", "null"},
	}
}

const numLists = 9

// listSpans are where its list members are, in the order of listMembers.
func (it *itemAt) listSpans() [numLists]span {
	return [...]span{it.barcodes, it.prices, it.stock, it.totals, it.effective, it.uoms, it.attributes, it.images, it.website}
}

// memberOrder is the order in which assemble sets the members of an item
// whose scalar members are named as those of members: JCS order, so that
// each is appended to the object (signer.Object.SetRaw searches and inserts
// otherwise). Slots below numLists are the list members, the others
// members[slot-numLists]. The items of a page that are assembled have the
// same scalar members (itemMembers writes them all, in one order), so one
// order serves the page; an item whose members differ is assembled in any
// order, which SetRaw sorts all the same.
func memberOrder(order []int32, members []memberAt) []int32 {
	order = order[:0]
	for k := range numLists + len(members) {
		order = append(order, int32(k))
	}
	lists := listMembers()
	name := func(k int32) string {
		if int(k) < numLists {
			return lists[k].name
		}
		return members[int(k)-numLists].name
	}
	slices.SortFunc(order, func(a, b int32) int { return signer.CompareKeys(name(a), name(b)) })
	return order
}

// room is how many members item i's object holds, and how many bytes of
// names and values: exactly what assemble sets.
func (p *page) room(i int) (members, bytes int) {
	it := &p.items[i]
	lists, names := it.listSpans(), listMembers()
	for _, m := range p.members[it.first:it.last] {
		bytes += len(m.name) + len(`"":`) + m.end - m.start
	}
	for k, l := range lists {
		size := l.end - l.start
		if size == 0 {
			size = len(names[k].empty)
		}
		bytes += len(names[k].name) + len(`"":`) + size
	}
	return it.last - it.first + numLists, bytes
}

// assemble copies item i's members into o, sized to hold them exactly
// (room), in the page's member order when the item's members fit it.
func (p *page) assemble(i int, o *signer.Object) error {
	it := &p.items[i]
	lists, names := it.listSpans(), listMembers()
	members := p.members[it.first:it.last]
	o.Grow(p.room(i))
	if p.orderOf != len(members) {
		p.order, p.orderOf = memberOrder(p.order, members), len(members)
	}
	for _, k := range p.order {
		if int(k) < numLists {
			v := p.arena[lists[k].start:lists[k].end]
			if len(v) == 0 {
				v = []byte(names[k].empty)
			}
			if err := o.SetRaw(names[k].name, v); err != nil {
				return err
			}
			continue
		}
		m := &members[int(k)-numLists]
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
		"is_stock_item", "is_sales_item", "has_variants", "variant_of", "end_of_life", "image", "modified", "sales_uom"}
}

// readItems reads the tabItem row each code matches and writes its members,
// under the row's name.
func (p *page) readItems(ctx context.Context, codes []string) error {
	d := p.d
	cols := itemColumns()
	for _, f := range d.extra {
		cols = append(cols, f.name)
	}
	// The selection is one more column, computed by the database (select.go).
	filter, args := d.cfg.Selection.itemFilter()
	q := "SELECT `" + strings.Join(cols, "`, `") + "`"
	if filter != "" {
		q += ", " + filter
	}
	// The database's clock, for the page's "today" (effective.go): read by
	// this statement rather than by one more.
	q += ", UTC_TIMESTAMP(6) FROM `tabItem` WHERE name IN (" + placeholders(len(codes)) + ")"
	rows, err := d.db.QueryContext(ctx, q, append(args, anySlice(codes)...)...)
	if err != nil {
		return fmt.Errorf("read items %s: %w", codeRange(codes), d.cfg.Selection.selectionError(err))
	}
	defer rows.Close()
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols), len(cols)+2)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var selected int
	if filter != "" {
		ptrs = append(ptrs, &selected)
	}
	var clock sql.RawBytes
	ptrs = append(ptrs, &clock)
	p.members = slices.Grow(p.members, (len(cols)-1)*len(codes))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read items %s: %w", codeRange(codes), err)
		}
		if p.utcNow == "" {
			p.utcNow = string(clock)
		}
		if filter != "" && selected == 0 {
			p.addDeselected(vals[0].String) // decided before any build: no members, no Problem
			continue
		}
		p.addItem(vals)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read items %s: %w", codeRange(codes), err)
	}
	return nil
}

// addItem writes the members of one tabItem row as the next item of the
// page, unless an item of that name is on it already. vals are the row's
// columns in readItems' order: itemColumns, then the extra fields. A value
// that cannot be sent becomes the item's problem; the item is on the page all
// the same (it exists).
func (p *page) addItem(vals []sql.NullString) {
	code := vals[0].String
	if _, dup := p.index[code]; dup {
		return
	}
	it := itemAt{first: len(p.members)}
	it.problem = p.itemMembers(code, vals)
	it.itemFacts = itemFacts{stockUOM: vals[5].String, salesUOM: vals[14].String, variantOf: vals[10].String,
		image: strings.TrimSpace(vals[12].String)}
	if eol, ok := dateOf(vals[11]); ok {
		it.endOfLife = eol
	}
	it.last = len(p.members)
	p.index[code] = len(p.items)
	p.items = append(p.items, it)
	p.codes = append(p.codes, code)
}

// itemMembers writes the members of the tabItem row vals, the item code's.
func (p *page) itemMembers(code string, vals []sql.NullString) *BuildError {
	d := p.d
	if at, ok := invalidUTF8At(code); !ok {
		return buildError("tabItem.name", code, fmt.Sprintf("not valid UTF-8 (byte 0x%02x at offset %d): an item code is sent as stored, "+
			"never with bytes replaced, so the item cannot be sent until it is renamed", code[at], at))
	}
	image, hasImage := d.publicImageOf(code, "image", vals[12]) // build_children.go: a private file is none
	modified, hasModified := d.datetimeValue(code, "modified", vals[13])
	eol, hasEOL := d.dateValue(code, "end_of_life", vals[11])
	p.stringMember(code, "item_code", code, true)
	for _, m := range [...]struct {
		name string
		v    sql.NullString
	}{{"item_name", vals[1]}, {"item_group", vals[2]}, {"brand", vals[3]}, {"description", vals[4]}, {"stock_uom", vals[5]}, {"variant_of", vals[10]}, {"sales_uom", vals[14]}} {
		p.stringMember(code, m.name, m.v.String, m.v.Valid && m.v.String != "")
	}
	p.stringMember(code, "end_of_life", eol, hasEOL)
	p.stringMember(code, "image", image, hasImage)
	p.stringMember(code, "modified", modified, hasModified)
	p.boolMember("disabled", check(vals[6]))
	p.boolMember("is_stock_item", check(vals[7]))
	p.boolMember("is_sales_item", check(vals[8]))
	p.boolMember("has_variants", check(vals[9]))
	base := len(vals) - len(d.extra)
	for i, ef := range d.extra {
		v, pr := d.extraValue(code, ef, vals[base+i])
		if pr != nil {
			return pr
		}
		start := len(p.arena)
		if s, ok := v.(string); ok {
			p.appendString(code, ef.name, s, true)
		} else {
			var err error
			if p.arena, err = signer.AppendValue(p.arena, v); err != nil {
				return buildError("tabItem."+ef.name, vals[base+i].String, err.Error())
			}
		}
		p.members = append(p.members, memberAt{ef.name, span{start, len(p.arena)}})
	}
	return nil
}

// stringMember adds a member holding the JSON string s, or null when !ok.
func (p *page) stringMember(code, name, s string, ok bool) {
	start := len(p.arena)
	p.appendString(code, name, s, ok)
	p.members = append(p.members, memberAt{name, span{start, len(p.arena)}})
}

func (p *page) boolMember(name string, b bool) {
	start := len(p.arena)
	p.arena = strconv.AppendBool(p.arena, b)
	p.members = append(p.members, memberAt{name, span{start, len(p.arena)}})
}

// appendString appends the JSON string s, or null when !ok. Bytes of s that
// are not UTF-8 are written as U+FFFD, and logged naming the item and field.
func (p *page) appendString(code, field, s string, ok bool) {
	if !ok {
		p.arena = append(p.arena, "null"...)
		return
	}
	out, err := signer.AppendString(p.arena, s)
	if err != nil { // only invalid UTF-8 fails
		s = p.d.validText(code, field, s)
		if out, err = signer.AppendString(p.arena, s); err != nil {
			out = append(p.arena, "null"...) // cannot happen: s is valid UTF-8 now
		}
	}
	p.arena = out
}

// validText is s with each byte that does not belong to a UTF-8 character
// replaced by U+FFFD, as encoding/json writes it, logged naming the item and
// field.
func (d *Detector) validText(code, field, s string) string {
	at, _ := invalidUTF8At(s)
	d.logger.Warn("text is not valid UTF-8; each invalid byte is sent as U+FFFD",
		"item", code, "field", field, "offset", at, "value", shownValue(s))
	return toValidUTF8(s)
}

// invalidUTF8At reports whether s is valid UTF-8 and, when not, the offset of
// its first byte that does not belong to a UTF-8 character.
func invalidUTF8At(s string) (int, bool) {
	if utf8.ValidString(s) {
		return 0, true
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return i, false
		}
		i += size
	}
	return len(s), false // not reached: s is not valid
}

// toValidUTF8 replaces each byte of s that does not belong to a UTF-8
// character with U+FFFD (strings.ToValidUTF8 would replace a run of them with
// one).
func toValidUTF8(s string) string {
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
			i++
			continue
		}
		b = append(b, s[i:i+size]...)
		i += size
	}
	return string(b)
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
func (p *page) appendTextMember(code, field, name string, v sql.NullString, comma bool) {
	p.appendName(name, comma)
	p.appendString(code, field, v.String, v.Valid && v.String != "")
}

// appendDecimal appends the JSON of a DECIMAL column's text (null for NULL),
// remembering exact values for the page: quantities and prices repeat. An
// inexact one is converted (and logged) for each item and field it appears in.
// Text that is no decimal number (column names where it was read) is a
// problem, and nothing is appended.
func (p *page) appendDecimal(code, field, column string, v sql.NullString) *BuildError {
	if !v.Valid {
		p.arena = append(p.arena, "null"...)
		return nil
	}
	if out, ok := appendShortDecimal(p.arena, v.String); ok {
		p.arena = out
		return nil
	}
	if js, ok := p.dec[v.String]; ok {
		p.arena = append(p.arena, js...)
		return nil
	}
	out, exact, pr := p.d.convertDecimal(code, field, column, v.String)
	if pr != nil {
		return pr
	}
	start := len(p.arena)
	var err error
	if p.arena, err = signer.AppendValue(p.arena, out); err != nil {
		return buildError(column, v.String, err.Error())
	}
	if exact {
		p.dec[v.String] = string(p.arena[start:])
	}
	return nil
}

// maxShortDigits is how many significant digits a decimal may have for
// appendShortDecimal: every decimal of at most 15 (DBL_DIG) is the shortest
// form of the double nearest to it, so signer.Decimal sends it exactly.
const maxShortDigits = 15

// appendShortDecimal appends the JSON number signer.Decimal makes of the
// decimal text s ([+-]digits[.digits]) when that number is s normalised: s
// has at most maxShortDigits significant digits, and is zero or at least
// 1e-6 in magnitude (below, ECMAScript's notation has an exponent). It is
// signer.Decimal without its float conversions, for the common case; it
// reports false (and appends nothing) for any other text, which
// signer.Decimal handles.
func appendShortDecimal[T string | []byte](dst []byte, s T) ([]byte, bool) {
	i, n := 0, len(s)
	neg := false
	if n > 0 && (s[0] == '-' || s[0] == '+') {
		neg, i = s[0] == '-', 1
	}
	intStart := i
	for i < n && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	intEnd, fracStart, fracEnd := i, i, i
	if i < n && s[i] == '.' {
		i++
		fracStart = i
		for i < n && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		fracEnd = i
	}
	if i != n || (intStart == intEnd && fracStart == fracEnd) {
		return dst, false
	}
	for intStart < intEnd && s[intStart] == '0' {
		intStart++
	}
	for fracEnd > fracStart && s[fracEnd-1] == '0' {
		fracEnd--
	}
	switch {
	case intStart == intEnd && fracStart == fracEnd:
		return append(dst, '0'), true // -0 too
	case intStart < intEnd:
		if intEnd-intStart+fracEnd-fracStart > maxShortDigits {
			return dst, false
		}
	default:
		lead := fracStart
		for s[lead] == '0' {
			lead++
		}
		if lead-fracStart > 5 || fracEnd-lead > maxShortDigits { // below 1e-6, or too many digits
			return dst, false
		}
	}
	if neg {
		dst = append(dst, '-')
	}
	if intStart == intEnd {
		dst = append(dst, '0')
	} else {
		dst = append(dst, s[intStart:intEnd]...)
	}
	if fracStart < fracEnd {
		dst = append(dst, '.')
		dst = append(dst, s[fracStart:fracEnd]...)
	}
	return dst, true
}

// badRow is a child row whose values cannot be sent: the problem of the item
// it is placed under.
type badRow struct {
	row     int
	problem *BuildError
}

// markBad makes each bad row's problem that of the item the row is placed
// under (item reads it from the placed row), and takes the row off that item
// (drop sets its item to -1).
func (p *page) markBad(bad []badRow, item func(row int) int, drop func(row int)) {
	for _, b := range bad {
		if i := item(b.row); i >= 0 {
			p.setProblem(i, b.problem)
		}
		drop(b.row)
	}
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

// barcodeEntry writes one barcode entry of item i (-1 while not known) whose
// parent is code.
func (p *page) barcodeEntry(i int, code string, barcode, typ, uom sql.NullString) entryAt {
	e := entryAt{item: i, span: span{start: len(p.arena)}}
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	p.appendTextMember(code, "barcodes.barcode", "barcode", barcode, false)
	p.appendTextMember(code, "barcodes.barcode_type", "barcode_type", typ, true)
	p.appendTextMember(code, "barcodes.uom", "uom", uom, true)
	p.arena = append(p.arena, '}')
	e.end = len(p.arena)
	return e
}

// convertDecimal is signer.Decimal for field of item code, logging a value
// that a JSON number cannot carry exactly (it is sent as a string). Text that
// is no decimal number is a problem of column.
func (d *Detector) convertDecimal(code, field, column, value string) (any, bool, *BuildError) {
	out, exact, err := signer.Decimal(value)
	if err != nil {
		return nil, false, buildError(column, value, decimalReason)
	}
	if !exact {
		d.logInexact(code, field, value)
	}
	return out, exact, nil
}

// decimalReason is the problem of text that is no decimal number.
const decimalReason = "not a decimal number (want digits with an optional sign and '.')"

// logInexact logs a number that is sent as a string because a JSON number
// cannot carry it exactly.
func (d *Detector) logInexact(code, field, value string) {
	d.logger.Warn("decimal has more digits than a JSON number carries exactly; sent as a string",
		"item", code, "field", field, "value", shownValue(value))
}

// extraValue is the JSON value of the extra field f of item code (see Build
// for the rules): nil, bool, json.Number or string. A value that cannot be
// sent is a problem.
func (d *Detector) extraValue(code string, f extraField, v sql.NullString) (any, *BuildError) {
	if !v.Valid {
		return nil, nil
	}
	column := func() string { return "tabItem." + f.name } // for a problem only
	switch f.dataType {
	case "decimal":
		out, exact, err := signer.Decimal(v.String)
		if err != nil {
			return nil, buildError(column(), v.String, decimalReason)
		}
		if !exact {
			d.logInexact(code, f.name, v.String)
		}
		return out, nil
	case "tinyint":
		return check(v), nil
	case "int", "smallint", "mediumint", "bigint":
		if f.columnType == "int(1)" {
			return check(v), nil
		}
		out, exact, ok := integer(v.String)
		if !ok {
			return nil, buildError(column(), v.String, "not an integer (want digits with an optional sign)")
		}
		if !exact {
			d.logger.Warn("integer is beyond ±2^53, where a JSON number (a double) no longer holds every integer; sent as a string",
				"item", code, "field", f.name, "value", v.String)
		}
		return out, nil
	case "float", "double":
		out, exact, err := signer.Float(v.String)
		if err != nil {
			if nonFinite(v.String) {
				return nil, buildError(column(), v.String, "not a finite number: no JSON value carries NaN or an infinity")
			}
			return nil, buildError(column(), v.String, "not a number (want digits with an optional sign, '.' and exponent of at most 9 digits)")
		}
		if !exact {
			d.logInexact(code, f.name, v.String)
		}
		return out, nil
	case "date":
		if s, ok := d.dateValue(code, f.name, v); ok {
			return s, nil
		}
		return nil, nil
	case "datetime", "timestamp":
		if s, ok := d.datetimeValue(code, f.name, v); ok {
			return s, nil
		}
		return nil, nil
	default:
		return text(v), nil
	}
}

// maxExactInteger is 2^53: every integer of at most this magnitude is a
// double exactly, and 2^53+1 is the first that is not.
const maxExactInteger = "9007199254740992"

// integer turns an integer column's text ([+-]digits) into its JSON value: a
// json.Number in canonical form while |n| <= 2^53 (exact), else the exact
// digits as a string (not exact). It reports false for other text.
func integer(s string) (v any, exact bool, ok bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return nil, false, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return nil, false, false
		}
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return json.Number("0"), true, true
	}
	if neg {
		s = "-" + s
	}
	digits := len(s)
	if neg {
		digits--
	}
	if digits < len(maxExactInteger) || (digits == len(maxExactInteger) && strings.TrimPrefix(s, "-") <= maxExactInteger) {
		return json.Number(s), true, true
	}
	return s, false, true
}

// nonFinite reports whether s names NaN or an infinity, with an optional
// sign, in any case (as signer.Float refuses them).
func nonFinite(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return strings.EqualFold(s, "nan") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "infinity")
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

// rfc3339Of turns a naive DATETIME text in the site's zone (as `modified`)
// into RFC 3339 with the site's UTC offset. It reports false for NULL, "",
// the zero date, and text that names no time (a zero month or day, 2024-02-30,
// 24:00:00), which no RFC 3339 time carries. A wall clock that the zone skips
// (a daylight-saving gap) is read as time.Date reads it.
func (d *Detector) rfc3339Of(v sql.NullString) (string, bool) {
	if emptyDate(v) {
		return "", false
	}
	s := normModified(v.String)
	if out, ok := d.fastRFC3339(s); ok {
		return out, true
	}
	t, err := time.ParseInLocation(ModifiedLayout, s, d.loc)
	if err != nil {
		return "", false
	}
	return t.Format(rfc3339Layout), true
}

// datetimeValue is rfc3339Of for field of item code, logging text that is not
// empty but names no time (it is sent as null).
func (d *Detector) datetimeValue(code, field string, v sql.NullString) (string, bool) {
	s, ok := d.rfc3339Of(v)
	if !ok && !emptyDate(v) {
		d.logger.Warn("date and time names no existing time; sent as null", "item", code, "field", field, "value", shownValue(v.String))
	}
	return s, ok
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

// atoiFixed reads a run of ASCII digits already checked (by modifiedKey or
// calendarDate).
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

// dateOf is the date part of a DATE or DATETIME column's text, YYYY-MM-DD.
// It reports false for NULL, "", the zero date, and a date that names no
// calendar day (a zero month or day, 2024-02-30), which no YYYY-MM-DD
// carries: MariaDB stores those under a lax sql_mode.
func dateOf(v sql.NullString) (string, bool) {
	if emptyDate(v) {
		return "", false
	}
	s := v.String
	if len(s) > 10 {
		s = s[:10]
	}
	if !calendarDate(s) {
		return "", false
	}
	return s, true
}

// dateValue is dateOf for field of item code, logging a date that is not
// empty but names no calendar day (it is sent as null).
func (d *Detector) dateValue(code, field string, v sql.NullString) (string, bool) {
	s, ok := dateOf(v)
	if !ok && !emptyDate(v) {
		d.logger.Warn("date names no calendar day; sent as null", "item", code, "field", field, "value", shownValue(v.String))
	}
	return s, ok
}

// emptyDate reports whether a DATE or DATETIME text is empty: NULL, "", or
// MariaDB's zero date (0000-00-00, 0000-00-00 00:00:00).
func emptyDate(v sql.NullString) bool {
	return !v.Valid || v.String == "" || strings.HasPrefix(v.String, "0000-00-00")
}

// calendarDate reports whether s is YYYY-MM-DD naming a day of the
// (proleptic Gregorian) calendar.
func calendarDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	y, m, day := atoiFixed(s[0:4]), atoiFixed(s[5:7]), atoiFixed(s[8:10])
	if m < 1 || m > 12 || day < 1 {
		return false
	}
	// Day 0 of the next month is the last day of this one.
	return day <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
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
