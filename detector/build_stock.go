package detector

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// stockQtys are the Bin quantities sent per warehouse and summed in
// stock_total, in JCS order of their names, with the field names decimal
// reports them under.
func stockQtys() [numStockQtys]stockQty {
	return [numStockQtys]stockQty{
		{"actual_qty", "tabBin.actual_qty", "stock.actual_qty", "stock_total.actual_qty"},
		{"projected_qty", "tabBin.projected_qty", "stock.projected_qty", "stock_total.projected_qty"},
		{"reserved_qty", "tabBin.reserved_qty", "stock.reserved_qty", "stock_total.reserved_qty"},
	}
}

const numStockQtys = 3

// stockQty is one Bin quantity: its name, the tabBin column it is read from
// (for a problem), and the fields of the entry it is logged under.
type stockQty struct{ name, column, field, totalField string }

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
	p.stockLists(bins)
	return nil
}

// stockLists writes the stock entries and the stock total of every item on
// the page from its Bins, placed. A quantity that cannot be sent is the
// problem of its item.
func (p *page) stockLists(bins []binRow) {
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
				if pr := p.appendDecimal(code, qty.field, qty.column, b.qty[i]); pr != nil {
					p.setProblem(item, pr)
				}
				if b.qty[i].Valid {
					totals[i].add(b.qty[i].String)
				}
			}
			p.appendName("warehouse", true)
			p.appendString(code, "stock.warehouse", b.warehouse, true)
			p.arena = append(p.arena, '}')
			e.end = len(p.arena)
			entries = append(entries, e)
		}
		it := &p.items[item]
		it.totals.start = len(p.arena)
		p.arena = append(p.arena, '{')
		for i, qty := range qtys {
			p.appendName(qty.name, i > 0)
			if pr := p.appendDecimal(code, qty.totalField, qty.column, sql.NullString{String: totals[i].text(), Valid: true}); pr != nil {
				p.setProblem(item, pr)
			}
		}
		p.arena = append(p.arena, '}')
		it.totals.end = len(p.arena)
	}
	p.lists(entries, func(it *itemAt, l span) { it.stock = l })
	p.entries = entries
}

// decimalSum adds DECIMAL texts exactly, as big.Rat does, ignoring texts that
// are not decimals as a DECIMAL column reads ([+-]digits[.digits], what
// signer.Decimal takes): big.Rat would also take fractions and exponents, and
// "9p9904000" (9 × 2^9904000) would cost seconds and megabytes. Such a text
// makes its item a problem anyway. While every text has at most 9 digits on
// either side of the point and the sum fits, it adds integers scaled by 10^9;
// then it goes on in big.Rat.
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
	if !plainDecimal(v) {
		return
	}
	if _, ok := r.SetString(v); ok {
		s.rat.Add(s.rat, &r)
	}
}

// plainDecimal reports whether v is [+-]digits[.digits], where either run of
// digits may be empty but not both.
func plainDecimal(v string) bool {
	if v != "" && (v[0] == '-' || v[0] == '+') {
		v = v[1:]
	}
	whole, frac, _ := strings.Cut(v, ".")
	if whole == "" && frac == "" {
		return false
	}
	for _, c := range []byte(whole + frac) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
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
