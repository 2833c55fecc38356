package detector

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Item codes are matched as the database matches them. ERPNext's tables use
// utf8mb4_unicode_ci, under which "item-001" = "ITEM-001", "CAFE-1" =
// "CAFÉ-1" and "A-1 " = "A-1" (PAD SPACE); an Item Price, Bin or barcode may
// name its item in a way that differs from tabItem.name like that, and so may
// a change the detector is asked to build. Go compares bytes, so every match
// that is not byte for byte is left to MariaDB:
//
//   - readItems selects tabItem rows with `name IN (codes)`: the column's
//     collation decides which row a code names, and the item is built under
//     the row's name;
//   - a code that is not byte for byte the name of a row read is looked up
//     with itemNamesQuery (primary key lookups, the column's collation), which
//     returns the row it matches, if any (page.resolve);
//   - the child queries select by `item_code IN (names)` (`parent IN` for
//     barcodes) as before; a row whose code is not byte for byte a name on the
//     page is a row the database matched by collation, and itemNamesQuery says
//     with which (page.placeStrays).
//
// What Go still compares is bytes, which is safe: equal bytes are equal under
// any collation, and tabItem.name is the primary key, unique under that
// collation, so a code equal byte for byte to a name read back from tabItem
// matches that row and no other. Only rows that name their item in another
// spelling cost a query more; the page queries and their plans are those of
// before (a JOIN on tabItem in each child query made the Bin query scan the
// whole of tabItem with a temporary table and cost a third more per page).

// stray is a row of a child table whose item code is not byte for byte the
// name of an item on the page: the database matched it with one of them by
// collation.
type stray struct {
	row  int    // its position in the reader's rows
	code string // its item_code (parent for barcodes), as stored
}

// resolve finds, for each code that is not byte for byte the name of an item
// read, the item the database matches it with, if any. It costs a query only
// when some code is such and some item was read: when none was, no code
// matches any row.
func (p *page) resolve(ctx context.Context, codes []string) error {
	if len(p.items) == 0 {
		return nil
	}
	var unmatched []string
	for _, c := range codes {
		if _, ok := p.index[c]; !ok {
			unmatched = append(unmatched, c)
		}
	}
	if len(unmatched) == 0 {
		return nil
	}
	if err := p.matchNames(ctx, unmatched); err != nil {
		return fmt.Errorf("read items %s: %w", codeRange(codes), err)
	}
	return nil
}

// placeStrays calls place with the position in p.items of the item the
// database matches each stray's code with, or -1 when it matches none on the
// page (the item was renamed or deleted since readItems read it). Codes not
// matched before on this page cost one query.
func (p *page) placeStrays(ctx context.Context, strays []stray, place func(row, item int)) error {
	var ask []string
	for _, s := range strays {
		if _, ok := p.alias[s.code]; !ok {
			ask = append(ask, s.code)
		}
	}
	if len(ask) > 0 {
		slices.Sort(ask)
		if err := p.matchNames(ctx, slices.Compact(ask)); err != nil {
			return err
		}
	}
	for _, s := range strays {
		i, ok := p.itemOf(s.code)
		if !ok {
			i = -1
		}
		place(s.row, i)
	}
	return nil
}

// matchNames asks the database which tabItem row each code matches and
// records the row's name in p.alias.
func (p *page) matchNames(ctx context.Context, codes []string) error {
	p.d.stats.nameLookups++
	rows, err := p.d.db.QueryContext(ctx, itemNamesQuery(len(codes)), anySlice(codes)...)
	if err != nil {
		return fmt.Errorf("match item codes %s with tabItem names: %w", codeRange(codes), err)
	}
	defer rows.Close()
	for rows.Next() {
		var k int
		var name string
		if err := rows.Scan(&k, &name); err != nil {
			return fmt.Errorf("match item codes %s with tabItem names: %w", codeRange(codes), err)
		}
		if k >= 0 && k < len(codes) {
			p.alias[codes[k]] = name
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("match item codes %s with tabItem names: %w", codeRange(codes), err)
	}
	return nil
}

// itemNamesQuery returns, for n codes, the position of each code that matches
// a tabItem row and that row's name. Each part is a lookup of the primary key
// compared with the column's own collation, as readItems' IN list is; the
// position, not the code, comes back, so nothing is compared in Go.
func itemNamesQuery(n int) string {
	var b strings.Builder
	b.Grow(n * 56)
	for i := range n {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("SELECT ")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(", name FROM `tabItem` WHERE name = ?")
	}
	return b.String()
}
