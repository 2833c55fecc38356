package detector

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// priceRow is one price entry and the key it is sorted by within its item.
type priceRow struct {
	entryAt
	key [7]string // price list, customer, supplier, batch, uom, valid_from, name
}

// priceColumns are the values of one tabItem Price row that an entry holds.
type priceColumns struct {
	name                                                   string
	priceList, currency, rate, uom, from, upto, cust, supp sql.NullString
	batch                                                  sql.NullString
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
	var bad []badRow
	// Declared once: what Scan writes to escapes to the heap.
	var code string
	var c priceColumns
	for rows.Next() {
		if err := rows.Scan(&code, &c.name, &c.priceList, &c.currency, &c.rate, &c.uom, &c.from, &c.upto, &c.cust, &c.supp, &c.batch); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
		i, ok := p.index[code]
		if !ok {
			i, strays = -1, append(strays, stray{len(prices), code})
		}
		r, pr := p.priceEntry(i, code, &c)
		if pr != nil {
			bad = append(bad, badRow{len(prices), pr})
		}
		prices = append(prices, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	if len(strays) > 0 {
		if err := p.placeStrays(ctx, strays, func(row, item int) { prices[row].item = item }); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
	}
	p.priceLists(prices, bad, len(strays) > 0)
	return nil
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
	p.appendTextMember(code, "prices.currency", "currency", c.currency, true)
	p.appendTextMember(code, "prices.customer", "customer", c.cust, true)
	p.appendTextMember(code, "prices.price_list", "price_list", c.priceList, true)
	p.appendName("rate", true)
	pr := p.appendDecimal(code, "prices.rate", "tabItem Price.price_list_rate", c.rate)
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
