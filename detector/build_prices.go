package detector

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// priceRow is one price entry and the key it is sorted by within its item.
type priceRow struct {
	entryAt
	key [7]string // price list, customer, supplier, batch, uom, valid_from, name
}

// priceColumns are the values of one tabItem Price row the detector reads:
// those its entry holds, and those ERPNext's choice of a price looks at.
type priceColumns struct {
	name                                                   string
	priceList, currency, rate, uom, from, upto, cust, supp sql.NullString
	batch                                                  sql.NullString
	packing                                                sql.NullString // packing_unit
	// selling and buying are the Price List's flags, or the row's own
	// columns when its list has no tabPrice List row.
	selling, buying sql.NullString
	list            sql.NullString // tabPrice List.name of the row's list; NULL when the list has no row
	enabled         sql.NullString // tabPrice List.enabled; NULL when the list has no row
}

// readPrices writes the prices (the selected rows, Selection) and
// effective_prices of the items named codes (tabItem names), each row under
// the item the database matches its item_code with, and sets each item's
// changesOn. The page's one price query also reads the selected rows of the
// templates of the page's variants that are not on it themselves: a variant
// with no price of its own in a list is quoted its template's (effective.go).
func (p *page) readPrices(ctx context.Context, codes []string) error {
	queried := p.queriedItems(codes)
	templates := p.templatesToRead(codes, queried)
	q, args := p.d.priceQuery(codes, templates)
	rows, err := p.d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	prices := p.prices[:0]
	own, tmpl := p.quotes[:0], p.templateQuotes[:0] // own[r] is the row of prices[r]
	var strays []stray
	var bad []badRow
	// Declared once: what Scan writes to escapes to the heap.
	var k int
	var owner sql.RawBytes // item_code: a string only for a stray (rowItem)
	var c priceColumns
	for rows.Next() {
		if err := rows.Scan(&k, &owner, &c.name, &c.priceList, &c.currency, &c.rate, &c.uom, &c.from, &c.upto, &c.cust, &c.supp, &c.batch,
			&c.packing, &c.selling, &c.buying, &c.list, &c.enabled); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
		if k > 0 { // a row of templates[k-1]: quoted to its variants, not sent as a price of theirs
			tmpl = append(tmpl, newQuoteRow(-1, k-1, &c))
			continue
		}
		i, code := p.rowItem(owner)
		if i < 0 {
			strays = append(strays, stray{len(prices), code})
		}
		r, pr := p.priceEntry(i, code, &c)
		if pr != nil {
			bad = append(bad, badRow{len(prices), pr})
		}
		prices = append(prices, r)
		own = append(own, newQuoteRow(i, -1, &c))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { prices[row].item, own[row].item = item, item }); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
	}
	p.quotes, p.templateQuotes = own, tmpl
	if err := p.effectivePrices(ctx, codes, queried, templates, own, tmpl); err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	p.priceLists(prices, bad, len(strays) > 0)
	return nil
}

// queriedItems marks the items named codes: the items whose own price rows
// the page's price query reads.
func (p *page) queriedItems(codes []string) []bool {
	queried := make([]bool, len(p.items))
	for _, c := range codes {
		if i, ok := p.index[c]; ok {
			queried[i] = true
		}
	}
	return queried
}

// templatesToRead are the templates (variant_of, as stored) of the variants
// named codes whose rows the price query does not read as an item's own:
// those not byte for byte the name of a queried item. Sorted, each once.
func (p *page) templatesToRead(codes []string, queried []bool) []string {
	var out []string
	for _, c := range codes {
		i, ok := p.index[c]
		if !ok {
			continue
		}
		t := p.items[i].variantOf
		if t == "" {
			continue
		}
		if j, ok := p.index[t]; ok && queried[j] {
			continue
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// priceColumnList is what the price query selects of a row after its kind
// and item_code, in priceColumns' Scan order.
const priceColumnList = "ip.name, ip.price_list, ip.currency, ip.price_list_rate, ip.uom, ip.valid_from, ip.valid_upto, " +
	"ip.customer, ip.supplier, ip.batch_no, ip.packing_unit, IFNULL(pl.selling, ip.selling), IFNULL(pl.buying, ip.buying), pl.name, pl.enabled"

// priceQuery reads the selected rows (priceSelection) of the items named
// codes, kind 0, and then those of each of templates, kind its position + 1
// (kinds are small non-negative numbers, which the driver reads without
// allocating).
// Each template is its own part, compared with item_code as readItems
// compares codes with tabItem.name (the column's collation), so that the
// database, not Go, says whose template a row is.
func (d *Detector) priceQuery(codes, templates []string) (string, []any) {
	from, where, selArgs := d.priceSelection()
	var b strings.Builder
	b.WriteString("SELECT 0, ip.item_code, " + priceColumnList + from + " WHERE ip.item_code IN (" + placeholders(len(codes)) + ")" + where)
	args := make([]any, 0, len(codes)+len(selArgs)+len(templates)*(1+len(selArgs)))
	args = append(append(args, anySlice(codes)...), selArgs...)
	for k, t := range templates {
		b.WriteString(" UNION ALL SELECT " + strconv.Itoa(k+1) + ", ip.item_code, " + priceColumnList + from + " WHERE ip.item_code = ?" + where)
		args = append(append(args, t), selArgs...)
	}
	// In about the order priceLists and sortQuotes sort the rows in (item,
	// then price list, customer, supplier, batch, uom, valid_from, name), so
	// that their sorts find them sorted but for what the collation orders
	// otherwise than bytes.
	b.WriteString(" ORDER BY 1, 2, 4, 10, 11, 12, 7, 8, 3")
	return b.String(), args
}

// priceSelection is the FROM clause of the price query and the conditions
// (with their arguments) that select the rows sent (Selection): rows of the
// named price lists, or of every list that is enabled and selling in
// tabPrice List (a row whose list has no tabPrice List row is then not
// selected); never a row with a supplier; a row with a customer only with
// CustomerPrices. An empty or NULL column is ERPNext's "without" (get_item_price
// compares IFNULL(column, "") with "").
func (d *Detector) priceSelection() (from, where string, args []any) {
	if len(d.cfg.PriceLists) > 0 {
		from = " FROM `tabItem Price` ip LEFT JOIN `tabPrice List` pl ON pl.name = ip.price_list"
		where = " AND ip.price_list IN (" + placeholders(len(d.cfg.PriceLists)) + ")"
		args = anySlice(d.cfg.PriceLists)
	} else {
		// STRAIGHT_JOIN: item_code first (a few rows per item), never all
		// the rows of the selling lists.
		from = " FROM `tabItem Price` ip STRAIGHT_JOIN `tabPrice List` pl ON pl.name = ip.price_list"
		where = " AND pl.enabled = 1 AND pl.selling = 1"
	}
	where += " AND IFNULL(ip.supplier, '') = ''"
	if !d.cfg.CustomerPrices {
		where += " AND IFNULL(ip.customer, '') = ''"
	}
	return from, where, args
}

// priceEntry writes the price entry of the tabItem Price row c of item i (-1
// while not known) whose item_code is code. A value that cannot be sent is
// returned as the problem of the row's item.
func (p *page) priceEntry(i int, code string, c *priceColumns) (priceRow, *BuildError) {
	r := priceRow{entryAt: entryAt{item: i, span: span{start: len(p.arena)}},
		key: [7]string{c.priceList.String, c.cust.String, c.supp.String, c.batch.String, c.uom.String, c.from.String, c.name}}
	validFrom, hasFrom := p.d.dateValue(code, "prices.valid_from", c.from)
	validUpto, hasUpto := p.d.dateValue(code, "prices.valid_upto", c.upto)
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	p.appendTextMember(code, "prices.batch_no", "batch_no", c.batch, false)
	p.appendName("buying", true)
	p.arena = strconv.AppendBool(p.arena, check(c.buying))
	p.appendTextMember(code, "prices.currency", "currency", c.currency, true)
	p.appendTextMember(code, "prices.customer", "customer", c.cust, true)
	p.appendTextMember(code, "prices.price_list", "price_list", c.priceList, true)
	p.appendName("rate", true)
	pr := p.appendDecimal(code, "prices.rate", "tabItem Price.price_list_rate", c.rate)
	p.appendName("selling", true)
	p.arena = strconv.AppendBool(p.arena, check(c.selling))
	p.appendTextMember(code, "prices.supplier", "supplier", c.supp, true)
	p.appendTextMember(code, "prices.uom", "uom", c.uom, true)
	p.appendName("valid_from", true)
	p.appendString(code, "prices.valid_from", validFrom, hasFrom)
	p.appendName("valid_upto", true)
	p.appendString(code, "prices.valid_upto", validUpto, hasUpto)
	p.arena = append(p.arena, '}')
	r.end = len(p.arena)
	return r, pr
}

// priceLists sets the prices of each item from its price rows, placed: the
// items of bad rows get their problem, and rows of no item on the page
// (placed at -1) are dropped; dropping says whether there can be such rows.
func (p *page) priceLists(prices []priceRow, bad []badRow, dropping bool) {
	if len(bad) > 0 {
		p.markBad(bad, func(row int) int { return prices[row].item }, func(row int) { prices[row].item = -1 })
		dropping = true
	}
	if dropping {
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
}
