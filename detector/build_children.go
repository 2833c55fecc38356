package detector

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
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
		"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ("+placeholders(len(tables))+")", anySlice(tables)...)
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
	err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "+
		"AND TABLE_NAME = ? AND COLUMN_NAME = 'item_code' AND SEQ_IN_INDEX = 1", websiteTable).Scan(&indexed)
	if err != nil {
		return fmt.Errorf("read the indexes of %s: %w", websiteTable, err)
	}
	if indexed > 0 {
		return nil
	}
	var rows sql.NullInt64
	err = d.db.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
		websiteTable).Scan(&rows)
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

// readUOMs writes the uoms of the items named codes (tabItem names):
// tabUOM Conversion Detail, {conversion_factor, uom}, in idx order.
func (p *page) readUOMs(ctx context.Context, codes []string) error {
	q := "SELECT parent, conversion_factor, uom FROM `tabUOM Conversion Detail` WHERE parent IN (" + placeholders(len(codes)) +
		") AND parenttype = 'Item' AND parentfield = 'uoms' ORDER BY parent, idx, name"
	err := p.readChildList(ctx, q, codes, func(i int, code string, a, b sql.NullString) (entryAt, *BuildError) {
		e := entryAt{item: i, span: span{start: len(p.arena)}}
		// Members in JCS order.
		p.arena = append(p.arena, '{')
		p.appendName("conversion_factor", false)
		pr := p.appendDecimal(code, "uoms.conversion_factor", "tabUOM Conversion Detail.conversion_factor", a)
		p.appendTextMember(code, "uoms.uom", "uom", b, true)
		p.arena = append(p.arena, '}')
		e.end = len(p.arena)
		return e, pr
	}, func(it *itemAt, l span) { it.uoms = l })
	if err != nil {
		return fmt.Errorf("read uoms of %s: %w", codeRange(codes), err)
	}
	return nil
}

// readAttributes writes the attributes of the items named codes:
// tabItem Variant Attribute, {attribute, value}, in idx order; value is null
// on a template (no attribute_value).
func (p *page) readAttributes(ctx context.Context, codes []string) error {
	q := "SELECT parent, attribute, attribute_value FROM `tabItem Variant Attribute` WHERE parent IN (" + placeholders(len(codes)) +
		") AND parenttype = 'Item' AND parentfield = 'attributes' ORDER BY parent, idx, name"
	err := p.readChildList(ctx, q, codes, func(i int, code string, a, b sql.NullString) (entryAt, *BuildError) {
		e := entryAt{item: i, span: span{start: len(p.arena)}}
		// Members in JCS order.
		p.arena = append(p.arena, '{')
		p.appendTextMember(code, "attributes.attribute", "attribute", a, false)
		p.appendTextMember(code, "attributes.value", "value", b, true)
		p.arena = append(p.arena, '}')
		e.end = len(p.arena)
		return e, nil
	}, func(it *itemAt, l span) { it.attributes = l })
	if err != nil {
		return fmt.Errorf("read attributes of %s: %w", codeRange(codes), err)
	}
	return nil
}

// readChildList runs q, which selects (parent, a, b) of the child rows of the
// items codes in their order, writes each row as an entry (entry; a problem
// is its item's) and sets each item's list (set).
func (p *page) readChildList(ctx context.Context, q string, codes []string,
	entry func(i int, code string, a, b sql.NullString) (entryAt, *BuildError), set func(it *itemAt, l span)) error {
	rows, err := p.d.db.QueryContext(ctx, q, p.codeArgsOf(codes)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	entries := p.entries[:0]
	var strays []stray
	var bad []badRow
	// Declared once: what Scan writes to escapes to the heap.
	var parent string
	var a, b sql.NullString
	for rows.Next() {
		if err := rows.Scan(&parent, &a, &b); err != nil {
			return err
		}
		i, ok := p.index[parent]
		if !ok {
			i, strays = -1, append(strays, stray{len(entries), parent})
		}
		e, pr := entry(i, parent, a, b)
		if pr != nil {
			bad = append(bad, badRow{len(entries), pr})
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { entries[row].item = item }); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		p.markBad(bad, func(row int) int { return entries[row].item }, func(row int) { entries[row].item = -1 })
	}
	if len(strays) > 0 || len(bad) > 0 {
		entries = slices.DeleteFunc(entries, func(e entryAt) bool { return e.item < 0 })
	}
	// Stable: each item keeps the query's order (idx, name).
	slices.SortStableFunc(entries, func(a, b entryAt) int { return a.item - b.item })
	p.lists(entries, set)
	p.entries = entries
	return nil
}

// fileRow is a file attached to an item.
type fileRow struct {
	item           int
	creation, name string
	url            sql.NullString
	private        bool
	code           string // attached_to_name, as stored
}

// readImages writes the images of the items named codes: tabItem.image, then
// the public files attached to the item (tabFile) in the order attached
// (creation, then name), as absolute URLs, each once. Private files are left
// out (and logged).
func (p *page) readImages(ctx context.Context, codes []string) error {
	q := "SELECT attached_to_name, creation, name, file_url, is_private FROM `tabFile` WHERE attached_to_doctype = 'Item' AND attached_to_name IN (" +
		placeholders(len(codes)) + ")"
	rows, err := p.d.db.QueryContext(ctx, q, p.codeArgsOf(codes)...)
	if err != nil {
		return fmt.Errorf("read images of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	var files []fileRow
	var strays []stray
	for rows.Next() {
		var f fileRow
		var creation sql.NullString
		if err := rows.Scan(&f.code, &creation, &f.name, &f.url, &f.private); err != nil {
			return fmt.Errorf("read images of %s: %w", codeRange(codes), err)
		}
		f.creation = creation.String
		i, ok := p.index[f.code]
		if !ok {
			i, strays = -1, append(strays, stray{len(files), f.code})
		}
		f.item = i
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read images of %s: %w", codeRange(codes), err)
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { files[row].item = item }); err != nil {
			return fmt.Errorf("read images of %s: %w", codeRange(codes), err)
		}
		files = slices.DeleteFunc(files, func(f fileRow) bool { return f.item < 0 })
	}
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
	return nil
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

// readWebsite writes the website of the items named codes from
// tabWebsite Item, when webshop is installed: {description, published,
// route, web_item_name, website_image}, or null for an item without one. An
// item with several (webshop allows one, but does not enforce it in the
// database) gets a published one first, then the last modified.
func (p *page) readWebsite(ctx context.Context, codes []string) error {
	if !p.d.store.website {
		return nil
	}
	// item_code has no index: this scans tabWebsite Item once per page.
	q := "SELECT item_code, name, modified, published, route, web_item_name, website_image, description FROM `" + websiteTable +
		"` WHERE item_code IN (" + placeholders(len(codes)) + ")"
	rows, err := p.d.db.QueryContext(ctx, q, p.codeArgsOf(codes)...)
	if err != nil {
		return fmt.Errorf("read website items of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	var webs []websiteRow
	var strays []stray
	for rows.Next() {
		var w websiteRow
		var modified, published sql.NullString
		if err := rows.Scan(&w.code, &w.name, &modified, &published, &w.route, &w.webItemName, &w.websiteImage, &w.description); err != nil {
			return fmt.Errorf("read website items of %s: %w", codeRange(codes), err)
		}
		w.modified, w.published = modified.String, check(published)
		i, ok := p.index[w.code]
		if !ok {
			i, strays = -1, append(strays, stray{len(webs), w.code})
		}
		w.item = i
		webs = append(webs, w)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read website items of %s: %w", codeRange(codes), err)
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { webs[row].item = item }); err != nil {
			return fmt.Errorf("read website items of %s: %w", codeRange(codes), err)
		}
		webs = slices.DeleteFunc(webs, func(w websiteRow) bool { return w.item < 0 })
	}
	// Each item's chosen row first: published, then the last modified (then
	// by name, for a stable choice).
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
	return nil
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
