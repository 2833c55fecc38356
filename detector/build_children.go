package detector

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// storefront is what the detector knows of the site's storefront tables,
// checked once by New, and the private file URLs it has logged.
type storefront struct {
	website bool // tabWebsite Item exists (the webshop app is installed)

	mu     sync.Mutex
	logged map[string]struct{} // item + "\x00" + path of each private file logged; at most maxLoggedPrivate
}

// maxLoggedPrivate bounds the private files remembered as logged; beyond it
// the set starts again (and a file may be logged once more).
const maxLoggedPrivate = 10_000

// storefrontColumns are the columns of the storefront tables Build reads;
// tabWebsite Item is optional (webshop), the others are ERPNext's own.
func storefrontColumns() map[string][]string {
	return map[string][]string{
		"tabWarehouse":              {"name", "is_group", "lft", "rgt"},
		"tabUOM Conversion Detail":  {"name", "parent", "parenttype", "parentfield", "idx", "uom", "conversion_factor"},
		"tabItem Variant Attribute": {"name", "parent", "parenttype", "parentfield", "idx", "attribute", "attribute_value"},
		"tabFile":                   {"name", "creation", "attached_to_doctype", "attached_to_name", "is_private", "file_url"},
		websiteTable:                {"name", "modified", "item_code", "published", "route", "web_item_name", "website_image", "description"},
	}
}

const websiteTable = "tabWebsite Item"

// checkStorefront checks that the database holds the storefront tables and
// columns Build reads, and notes whether tabWebsite Item exists: without
// webshop, `website` is null and the table is never queried.
func (d *Detector) checkStorefront(ctx context.Context) error {
	want := storefrontColumns()
	tables := make([]string, 0, len(want))
	for t := range want {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	rows, err := d.db.QueryContext(ctx, "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "+
		"WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ("+placeholders(len(tables))+")", append([]any{d.db.schema}, anySlice(tables)...)...)
	if err != nil {
		return fmt.Errorf("read ERPNext storefront table columns: %w", err)
	}
	defer rows.Close()
	have := map[string]map[string]bool{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return fmt.Errorf("read ERPNext storefront table columns: %w", err)
		}
		if have[table] == nil {
			have[table] = map[string]bool{}
		}
		have[table][col] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read ERPNext storefront table columns: %w", err)
	}
	var missing []string
	for _, table := range tables {
		if have[table] == nil {
			if table != websiteTable {
				missing = append(missing, "table `"+table+"`")
			}
			continue
		}
		for _, c := range want[table] {
			if !have[table][c] {
				missing = append(missing, "`"+table+"`."+c)
			}
		}
	}
	if len(missing) > 0 {
		return siteErrorf("the database is not an ERPNext v14+ site (or its webshop app is not one erpsync reads): missing %s", strings.Join(missing, ", "))
	}
	d.store.website = have[websiteTable] != nil
	if d.store.website {
		return d.checkWebsiteIndex(ctx)
	}
	return nil
}

// websiteScanWarn is how many Website Items make a page's scan of the table
// worth a warning.
const websiteScanWarn = 2000

// checkWebsiteIndex warns, once, when tabWebsite Item has many rows and no
// index starting with item_code: webshop creates none, so each page of items
// built reads the whole table. The fix is an index, which erpsync (a
// read-only user) does not create itself.
func (d *Detector) checkWebsiteIndex(ctx context.Context) error {
	var indexed int
	err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? "+
		"AND TABLE_NAME = ? AND COLUMN_NAME = 'item_code' AND SEQ_IN_INDEX = 1", d.db.schema, websiteTable).Scan(&indexed)
	if err != nil {
		return fmt.Errorf("read the indexes of %s: %w", websiteTable, err)
	}
	if indexed > 0 {
		return nil
	}
	var rows sql.NullInt64
	err = d.db.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
		d.db.schema, websiteTable).Scan(&rows)
	if err != nil {
		return fmt.Errorf("read the size of %s: %w", websiteTable, err)
	}
	if rows.Int64 >= websiteScanWarn {
		d.logger.Warn("tabWebsite Item has no index on item_code, so every page of items erpsync builds reads the whole table; "+
			"add one as the database's administrator: ALTER TABLE `tabWebsite Item` ADD INDEX item_code_index (item_code)",
			"rows", rows.Int64)
	}
	return nil
}

// publicImageOf is imageOf for a URL sent to the storefront (`image`,
// `images`, `website_image`): a private file (/private/files/...), which only
// a logged-in ERPNext user can fetch, is none. Each private file is logged
// once, naming the item, field and path (never the query string).
func (d *Detector) publicImageOf(code, field string, v sql.NullString) (string, bool) {
	if path, private := privateFile(v.String); private {
		d.logPrivate(code, field, path)
		return "", false
	}
	return d.imageOf(v)
}

// privatePrefix starts the path of every private file (FINDINGS §7).
const privatePrefix = "/private/files/"

// privateFile reports whether the file URL u (site-relative as ERPNext
// stores it, or absolute) is a private file, and its path.
func privateFile(u string) (string, bool) {
	u = strings.TrimSpace(u)
	if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		parsed, err := url.Parse(u)
		if err != nil {
			return "", false
		}
		return parsed.Path, strings.HasPrefix(parsed.Path, privatePrefix)
	}
	if !strings.HasPrefix(u, "/") {
		u = "/" + u // as imageOf reads it
	}
	path, _, _ := strings.Cut(u, "?")
	return path, strings.HasPrefix(path, privatePrefix)
}

// logPrivate logs once per detector that the private file at path of item
// code is not sent.
func (d *Detector) logPrivate(code, field, path string) {
	s := &d.store
	key := code + "\x00" + path
	s.mu.Lock()
	_, done := s.logged[key]
	if !done {
		if s.logged == nil || len(s.logged) >= maxLoggedPrivate {
			s.logged = make(map[string]struct{})
		}
		s.logged[key] = struct{}{}
	}
	s.mu.Unlock()
	if !done {
		d.logger.Warn("private file is not sent: the storefront cannot fetch it (make the file public in ERPNext to send it)",
			"item", code, "field", field, "path", shownValue(path))
	}
}

// codeArgsOf is anySlice(codes), made once for the page: its storefront
// readers are all given the same names.
func (p *page) codeArgsOf(codes []string) []any {
	if len(p.codeArgs) == len(codes) {
		same := true
		for i, c := range codes {
			if s, _ := p.codeArgs[i].(string); s != c {
				same = false
				break
			}
		}
		if same {
			return p.codeArgs
		}
	}
	p.codeArgs = p.codeArgs[:0]
	for _, c := range codes {
		p.codeArgs = append(p.codeArgs, c)
	}
	return p.codeArgs
}

// The barcodes, uoms, attributes, files and Website Items of a page's items
// are read by one statement (childrenQuery): one query per table, in one
// round trip. Each part selects the same columns: its kind, the item's name
// as the row stores it (owner), the row's rank, a key, and up to childValues
// values. The rows come in no order: sorting them all would make the server
// copy every file URL and website description (TEXT) into a temporary table
// on disk. A barcode's, uom's or attribute's rank is its place in the order
// of its table's rows by (parent, idx, then barcode or name), which the
// database numbers by the column's collation (ROW_NUMBER): placed at that
// rank, the rows are in the order a query of their own with that ORDER BY
// gave. Files and Website Items are sorted here.

// Kinds of the rows of the children statement (its first column).
const (
	childBarcode   = 0 // key barcode; barcode_type, uom
	childUOM       = 1 // key name; conversion_factor, uom
	childAttribute = 2 // key name; attribute, attribute_value
	childFile      = 3 // key name; creation, file_url, is_private
	childWebsite   = 4 // key name; modified, published, route, web_item_name, website_image, description
)

// childValues is how many values a row of the children statement has beyond
// its kind, owner, rank and key.
const childValues = 6

// childrenQuery is the children statement for n names, each part given them
// all as arguments; it reads tabWebsite Item only when website is set.
func childrenQuery(n int, website bool) string {
	in := placeholders(n)
	parts := []string{
		"SELECT " + strconv.Itoa(childBarcode) + " AS kind, parent AS owner, ROW_NUMBER() OVER (ORDER BY parent, idx, barcode) AS rank_in_table, " +
			"barcode AS row_key, barcode_type, uom, NULL, NULL, NULL, NULL " +
			"FROM `tabItem Barcode` WHERE parent IN (" + in + ") AND parenttype = 'Item' AND (parentfield = 'barcodes' OR parentfield IS NULL)",
		"SELECT " + strconv.Itoa(childUOM) + ", parent, ROW_NUMBER() OVER (ORDER BY parent, idx, name), name, conversion_factor, uom, NULL, NULL, NULL, NULL " +
			"FROM `tabUOM Conversion Detail` WHERE parent IN (" + in + ") AND parenttype = 'Item' AND parentfield = 'uoms'",
		"SELECT " + strconv.Itoa(childAttribute) + ", parent, ROW_NUMBER() OVER (ORDER BY parent, idx, name), name, attribute, attribute_value, NULL, NULL, NULL, NULL " +
			"FROM `tabItem Variant Attribute` WHERE parent IN (" + in + ") AND parenttype = 'Item' AND parentfield = 'attributes'",
		"SELECT " + strconv.Itoa(childFile) + ", attached_to_name, NULL, name, creation, file_url, is_private, NULL, NULL, NULL " +
			"FROM `tabFile` WHERE attached_to_doctype = 'Item' AND attached_to_name IN (" + in + ")",
	}
	if website {
		// item_code has no index: this scans tabWebsite Item once per page.
		parts = append(parts, "SELECT "+strconv.Itoa(childWebsite)+", item_code, NULL, name, modified, published, route, web_item_name, website_image, description "+
			"FROM `"+websiteTable+"` WHERE item_code IN ("+in+")")
	}
	return strings.Join(parts, " UNION ALL ")
}

// childRows are the rows of the children statement, by kind, as read.
type childRows struct {
	barcodes, uoms, attributes []entryAt
	badUOMs                    []badRow
	files                      []fileRow
	webs                       []websiteRow
}

// reset empties c, keeping its space.
func (c *childRows) reset() {
	c.barcodes, c.uoms, c.attributes, c.badUOMs = c.barcodes[:0], c.uoms[:0], c.attributes[:0], c.badUOMs[:0]
	clear(c.files) // they hold strings
	clear(c.webs)
	c.files, c.webs = c.files[:0], c.webs[:0]
}

// childRef is a row of childRows: its kind and position.
type childRef struct{ kind, row int }

// readChildren writes the barcodes, uoms, attributes, images and website of
// the items named codes (tabItem names), each row under the item the
// database matches its parent (attached_to_name, item_code) with:
//
//   - barcodes: tabItem Barcode, {barcode, barcode_type, uom}, in idx order;
//   - uoms: tabUOM Conversion Detail, {conversion_factor, uom}, in idx order;
//   - attributes: tabItem Variant Attribute, {attribute, value}, in idx
//     order; value is null on a template (no attribute_value);
//   - images: tabItem.image, then the public files attached to the item
//     (tabFile) in the order attached (creation, then name), as absolute
//     URLs, each once; private files are left out (and logged);
//   - website, when webshop is installed: tabWebsite Item, {description,
//     published, route, web_item_name, website_image}, or null for an item
//     without one. An item with several (webshop allows one, but does not
//     enforce it in the database) gets a published one first, then the last
//     modified.
func (p *page) readChildren(ctx context.Context, codes []string) error {
	if err := p.readChildRows(ctx, codes); err != nil {
		return fmt.Errorf("read barcodes, uoms, attributes, files and website items of %s: %w", codeRange(codes), err)
	}
	c := &p.children
	p.barcodeLists(slices.DeleteFunc(c.barcodes, func(e entryAt) bool { return e.item < 0 }))
	if len(c.badUOMs) > 0 {
		p.markBad(c.badUOMs, func(row int) int { return c.uoms[row].item }, func(row int) { c.uoms[row].item = -1 })
	}
	p.childLists(slices.DeleteFunc(c.uoms, func(e entryAt) bool { return e.item < 0 }), func(it *itemAt, l span) { it.uoms = l })
	p.childLists(slices.DeleteFunc(c.attributes, func(e entryAt) bool { return e.item < 0 }), func(it *itemAt, l span) { it.attributes = l })
	p.imageLists(slices.DeleteFunc(c.files, func(f fileRow) bool { return f.item < 0 }))
	p.websites(slices.DeleteFunc(c.webs, func(w websiteRow) bool { return w.item < 0 }))
	return nil
}

// readChildRows runs the children statement for the items named codes and
// keeps its rows in p.children, each placed under its item (-1: none on the
// page). Barcodes, uoms and attributes are written as entries as they come.
func (p *page) readChildRows(ctx context.Context, codes []string) error {
	names := p.codeArgsOf(codes)
	parts := 4
	if p.d.store.website {
		parts = 5
	}
	args := make([]any, 0, parts*len(names))
	for range parts {
		args = append(args, names...)
	}
	rows, err := p.d.db.QueryContext(ctx, childrenQuery(len(codes), p.d.store.website), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	c := &p.children
	c.reset()
	var refs []childRef
	var strays []stray
	// Declared once: what Scan writes to escapes to the heap.
	var kind int
	var owner sql.RawBytes // a string only for a stray (rowItem)
	var rank sql.NullInt64
	var key sql.NullString
	var v [childValues]sql.NullString
	for rows.Next() {
		if err := rows.Scan(&kind, &owner, &rank, &key, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]); err != nil {
			return err
		}
		i, code := p.rowItem(owner)
		row, err := p.childRow(i, kind, int(rank.Int64), code, &key, &v)
		if err != nil {
			return err
		}
		if row >= 0 && i < 0 {
			strays = append(strays, stray{len(refs), code})
			refs = append(refs, childRef{kind, row})
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(strays) > 0 {
		return p.placeStrays(ctx, strays, func(r, item int) { c.place(refs[r], item) })
	}
	return nil
}

// childRow keeps one row of the children statement, of item i (-1 while not
// known) whose owner is code, and returns its position among the rows of its
// kind; -1 when it is not kept (a barcode row without a barcode). A
// barcode's, uom's or attribute's position is its rank - 1.
func (p *page) childRow(i, kind, rank int, code string, key *sql.NullString, v *[childValues]sql.NullString) (int, error) {
	c := &p.children
	switch kind {
	case childBarcode:
		if !key.Valid || key.String == "" {
			_, err := atRank(&c.barcodes, rank, entryAt{item: -1}) // holds its rank, dropped
			return -1, err
		}
		return atRank(&c.barcodes, rank, p.barcodeEntry(i, code, *key, v[0], v[1]))
	case childUOM:
		e, pr := p.uomEntry(i, code, v[0], v[1])
		row, err := atRank(&c.uoms, rank, e)
		if pr != nil && err == nil {
			c.badUOMs = append(c.badUOMs, badRow{row, pr})
		}
		return row, err
	case childAttribute:
		return atRank(&c.attributes, rank, p.attributeEntry(i, code, v[0], v[1]))
	case childFile:
		private, err := isPrivate(v[2])
		if err != nil {
			return -1, err
		}
		c.files = append(c.files, fileRow{item: i, code: code, name: key.String, creation: v[0].String, url: v[1], private: private})
		return len(c.files) - 1, nil
	case childWebsite:
		c.webs = append(c.webs, websiteRow{item: i, code: code, name: key.String, modified: v[0].String, published: check(v[1]),
			route: v[2], webItemName: v[3], websiteImage: v[4], description: v[5]})
		return len(c.webs) - 1, nil
	}
	return -1, fmt.Errorf("children statement: row of unknown kind %d", kind)
}

// atRank puts e at position rank-1 of *rows (rank counts from 1), which
// holds -1 entries where rows of lower rank are still to come, and returns
// that position.
func atRank(rows *[]entryAt, rank int, e entryAt) (int, error) {
	if rank < 1 {
		return -1, fmt.Errorf("children statement: rank %d", rank)
	}
	for len(*rows) < rank {
		*rows = append(*rows, entryAt{item: -1})
	}
	(*rows)[rank-1] = e
	return rank - 1, nil
}

// isPrivate reads tabFile.is_private as a bool column is scanned.
func isPrivate(v sql.NullString) (bool, error) {
	if !v.Valid {
		return false, fmt.Errorf("tabFile.is_private is NULL")
	}
	b, err := strconv.ParseBool(v.String)
	if err != nil {
		return false, fmt.Errorf("tabFile.is_private %q: %w", v.String, err)
	}
	return b, nil
}

// place puts the row ref under item (-1: none on the page).
func (c *childRows) place(ref childRef, item int) {
	switch ref.kind {
	case childBarcode:
		c.barcodes[ref.row].item = item
	case childUOM:
		c.uoms[ref.row].item = item
	case childAttribute:
		c.attributes[ref.row].item = item
	case childFile:
		c.files[ref.row].item = item
	case childWebsite:
		c.webs[ref.row].item = item
	}
}

// uomEntry writes one uoms entry of item i (-1 while not known) whose parent
// is code. A factor that is no decimal is the problem of the row's item.
func (p *page) uomEntry(i int, code string, factor, uom sql.NullString) (entryAt, *BuildError) {
	e := entryAt{item: i, span: span{start: len(p.arena)}}
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	p.appendName("conversion_factor", false)
	pr := p.appendDecimal(code, "uoms.conversion_factor", "tabUOM Conversion Detail.conversion_factor", factor)
	p.appendTextMember(code, "uoms.uom", "uom", uom, true)
	p.arena = append(p.arena, '}')
	e.end = len(p.arena)
	return e, pr
}

// attributeEntry writes one attributes entry of item i (-1 while not known)
// whose parent is code.
func (p *page) attributeEntry(i int, code string, attribute, value sql.NullString) entryAt {
	e := entryAt{item: i, span: span{start: len(p.arena)}}
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	p.appendTextMember(code, "attributes.attribute", "attribute", attribute, false)
	p.appendTextMember(code, "attributes.value", "value", value, true)
	p.arena = append(p.arena, '}')
	e.end = len(p.arena)
	return e
}

// childLists sets a list of each item from its entries, placed, each item's
// in the order read (idx, then barcode or name).
func (p *page) childLists(entries []entryAt, set func(it *itemAt, l span)) {
	slices.SortStableFunc(entries, func(a, b entryAt) int { return a.item - b.item })
	p.lists(entries, set)
}

// barcodeLists sets the barcodes of each item from its entries, placed.
func (p *page) barcodeLists(entries []entryAt) {
	p.childLists(entries, func(it *itemAt, l span) { it.barcodes = l })
}

// fileRow is a file attached to an item.
type fileRow struct {
	item           int
	creation, name string
	url            sql.NullString
	private        bool
	code           string // attached_to_name, as stored
}

// imageLists writes the images of every item on the page from its files,
// placed.
func (p *page) imageLists(files []fileRow) {
	slices.SortFunc(files, func(a, b fileRow) int {
		if a.item != b.item {
			return a.item - b.item
		}
		if c := strings.Compare(a.creation, b.creation); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	var urls []string // scratch: the item's URLs so far
	for i := range p.items {
		n := 0
		for n < len(files) && files[n].item == i {
			n++
		}
		if !p.items[i].deselected { // not sent: nothing to log about it
			urls = p.imageList(i, files[:n], urls[:0])
		}
		files = files[n:]
	}
}

// imageList writes the images of item i from its main image and its files,
// sorted. urls is scratch space, returned for reuse.
func (p *page) imageList(i int, files []fileRow, urls []string) []string {
	d, it, code := p.d, &p.items[i], p.codes[i]
	if u, ok := d.publicImageOf(code, "image", sql.NullString{String: it.image, Valid: true}); ok {
		urls = append(urls, u)
	}
	for _, f := range files {
		if strings.TrimSpace(f.url.String) == "" {
			continue
		}
		if f.private {
			path, _ := privateFile(f.url.String)
			d.logPrivate(code, "images", path)
			continue
		}
		if u, ok := d.publicImageOf(code, "images", f.url); ok && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return urls
	}
	it.images.start = len(p.arena)
	p.arena = append(p.arena, '[')
	for k, u := range urls {
		if k > 0 {
			p.arena = append(p.arena, ',')
		}
		p.appendString(code, "images", u, true)
	}
	p.arena = append(p.arena, ']')
	it.images.end = len(p.arena)
	return urls
}

// websiteRow is a tabWebsite Item row of an item.
type websiteRow struct {
	item                                          int
	code, name, modified                          string
	published                                     bool
	route, webItemName, websiteImage, description sql.NullString
}

// websites writes the website of each item that has Website Items, placed:
// its chosen row, published first, then the last modified (then by name, for
// a stable choice).
func (p *page) websites(webs []websiteRow) {
	slices.SortFunc(webs, func(a, b websiteRow) int {
		switch {
		case a.item != b.item:
			return a.item - b.item
		case a.published != b.published:
			if a.published {
				return -1
			}
			return 1
		}
		if c := strings.Compare(b.modified, a.modified); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	for k := range webs {
		if k == 0 || webs[k].item != webs[k-1].item {
			p.websiteEntry(&webs[k])
		}
	}
}

// websiteEntry writes the website of w's item from w.
func (p *page) websiteEntry(w *websiteRow) {
	code := p.codes[w.item]
	it := &p.items[w.item]
	image, hasImage := p.d.publicImageOf(code, "website.website_image", w.websiteImage)
	it.website.start = len(p.arena)
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	p.appendTextMember(code, "website.description", "description", w.description, false)
	p.appendName("published", true)
	if w.published {
		p.arena = append(p.arena, "true"...)
	} else {
		p.arena = append(p.arena, "false"...)
	}
	p.appendTextMember(code, "website.route", "route", w.route, true)
	p.appendTextMember(code, "website.web_item_name", "web_item_name", w.webItemName, true)
	p.appendName("website_image", true)
	p.appendString(code, "website.website_image", image, hasImage)
	p.arena = append(p.arena, '}')
	it.website.end = len(p.arena)
}
