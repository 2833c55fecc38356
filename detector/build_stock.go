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
// reports them under. available_qty, computed from them, is not one of them.
func stockQtys() [numStockQtys]stockQty {
	return [numStockQtys]stockQty{
		{"actual_qty", "tabBin.actual_qty", "stock.actual_qty", "stock_total.actual_qty"},
		{"projected_qty", "tabBin.projected_qty", "stock.projected_qty", "stock_total.projected_qty"},
		{"reserved_qty", "tabBin.reserved_qty", "stock.reserved_qty", "stock_total.reserved_qty"},
	}
}

const numStockQtys = 3

// Positions of the quantities in stockQtys.
const (
	qtyActual    = 0
	qtyProjected = 1
	qtyReserved  = 2
)

// stockQty is one Bin quantity: its name, the tabBin column it is read from
// (for a problem), and the fields of the entry it is logged under.
type stockQty struct{ name, column, field, totalField string }

// binRow is one row of readStock: a Bin of an item on a leaf warehouse (or on
// a warehouse with no tabWarehouse row, read as a leaf), its quantities in
// stockQtys order, and the stock entry it counts in. The zero entry and group
// are a Bin counted in its own warehouse's entry.
type binRow struct {
	item      int
	warehouse string // the warehouse the Bin is on
	qty       [numStockQtys]sql.NullString
	entry     string // the warehouse whose entry the Bin counts in; "" for its own
	group     bool   // entry is a group warehouse: its quantities are sums over its leaves
	noBin     bool   // no Bin: the item has an entry for the group warehouse entry (it has a Bin on the group itself)

	// Set by stockLists, once per Bin: its quantities as parseScaled reads
	// them (scaled[i] when fits[i]), and its available quantity.
	scaled    [numStockQtys]int64
	fits      [numStockQtys]bool
	available decimalSum
}

// parse sets b's scaled quantities and its available quantity
// (leafAvailable), each text read once.
func (b *binRow) parse() {
	for i, v := range b.qty {
		b.scaled[i], b.fits[i] = 0, false
		if v.Valid {
			b.scaled[i], b.fits[i] = parseScaled(v.String)
		}
	}
	var s decimalSum
	if b.qty[qtyActual].Valid {
		s.addScaled(b.scaled[qtyActual], b.fits[qtyActual], b.qty[qtyActual].String)
	}
	if b.qty[qtyReserved].Valid {
		s.subScaled(b.scaled[qtyReserved], b.fits[qtyReserved], b.qty[qtyReserved].String)
	}
	if s.negative() {
		s = decimalSum{}
	}
	b.available = s
}

// entryName is the warehouse of the stock entry b counts in.
func (b *binRow) entryName() string {
	if b.entry == "" {
		return b.warehouse
	}
	return b.entry
}

// stockWarehouse is a selected warehouse: every item has an entry for it.
type stockWarehouse struct {
	name  string // tabWarehouse.name, or the name selected when no row has it
	group bool
}

// Kinds of the rows of the stock queries (their first column, as text).
const (
	stockRowWarehouse = "0" // a selected warehouse: name and is_group only
	stockRowBin       = "1" // a Bin on a leaf, counted in the entry of the warehouse named
	stockRowGroup     = "2" // a Bin on a group warehouse itself: the item has an entry for the group
)

// readStock writes the stock and stock totals of the items named codes
// (tabItem names), each Bin under the item the database matches its
// item_code with. The warehouse tree (lft/rgt, is_group) is read by the same
// statement as the Bins: ERPNext moves lft/rgt without `modified`, so they are
// never kept from one page to the next.
func (p *page) readStock(ctx context.Context, codes []string) error {
	q, args := stockQuery(codes, p.codeArgsOf(codes), p.d.cfg.Warehouses)
	rows, err := p.d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	bins, whs := p.bins[:0], p.warehouses[:0]
	var strays []stray
	// Declared once: what Scan writes to escapes to the heap. Kind, entry
	// and is_group are read in place: most entries are their Bin's own
	// warehouse, and need no string of their own.
	var kind, entry, group, owner sql.RawBytes // owner: item_code, a string only for a stray (rowItem)
	var wh sql.NullString
	var b binRow
	for rows.Next() {
		if err := rows.Scan(&kind, &owner, &entry, &group, &wh, &b.qty[0], &b.qty[1], &b.qty[2]); err != nil {
			return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
		}
		b.group = len(group) > 0 && string(group) != "0"
		if string(kind) == stockRowWarehouse {
			whs = append(whs, stockWarehouse{name: string(entry), group: b.group})
			continue
		}
		i, code := p.rowItem(owner)
		if i < 0 {
			strays = append(strays, stray{len(bins), code})
		}
		b.item, b.warehouse, b.noBin = i, wh.String, string(kind) == stockRowGroup
		switch {
		case b.noBin:
			b.entry, b.warehouse = string(entry), ""
		case string(entry) == b.warehouse:
			b.entry = "" // its own
		default:
			b.entry = string(entry)
		}
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
	p.warehouses = whs
	p.stockLists(bins)
	return nil
}

// stockQuery is the statement that reads the stock of the items codes
// (codeArgs: the same, as arguments), with its arguments. Each row is (kind, item_code, entry warehouse, is_group,
// Bin warehouse, actual_qty, projected_qty, reserved_qty); see the stockRow
// kinds.
//
// With warehouses selected, each selected name is looked up in tabWarehouse:
// a group stands for its leaf warehouses (is_group = 0, lft and rgt inside
// its own), a leaf for itself, and a name no row has for the Bins that name
// it (a leaf). The Bins of the items on those leaves are read by item_code
// (the page's Bins, whatever the size of the tree), and every selected
// warehouse comes back once more alone (kind 0), so that an item with no Bin
// in it still has its entry.
//
// With none selected, every Bin of the items is read; one on a group
// warehouse itself (not a place stock can be in, but ERPNext does not forbid
// a reservation there) gives the item an entry for the group, whose Bins are
// those of its leaves.
func stockQuery(codes []string, codeArgs []any, selected []string) (string, []any) {
	selected = uniqueSorted(selected)
	in := placeholders(len(codes))
	if len(selected) == 0 {
		q := "SELECT IF(IFNULL(w.is_group, 0) = 1, " + stockRowGroup + ", " + stockRowBin + "), b.item_code, IFNULL(w.name, b.warehouse), IFNULL(w.is_group, 0), " +
			"b.warehouse, b.actual_qty, b.projected_qty, b.reserved_qty " +
			"FROM `tabBin` b LEFT JOIN `tabWarehouse` w ON w.name = b.warehouse WHERE b.item_code IN (" + in + ") " +
			"UNION ALL " +
			"SELECT " + stockRowBin + ", b.item_code, g.name, 1, b.warehouse, b.actual_qty, b.projected_qty, b.reserved_qty " +
			"FROM `tabBin` gb JOIN `tabWarehouse` g ON g.name = gb.warehouse AND g.is_group = 1 " +
			"JOIN `tabWarehouse` l ON l.is_group = 0 AND l.lft > g.lft AND l.rgt < g.rgt " +
			"JOIN `tabBin` b ON b.item_code = gb.item_code AND b.warehouse = l.name " +
			"WHERE gb.item_code IN (" + in + ")"
		return q, append(codeArgs[:len(codeArgs):len(codeArgs)], codeArgs...)
	}
	var sel strings.Builder
	for i := range selected {
		if i > 0 {
			sel.WriteString(" UNION ALL ")
		}
		sel.WriteString("SELECT ? AS sel")
	}
	q := "WITH s AS (" + sel.String() + "), " +
		"m AS (SELECT DISTINCT IFNULL(g.name, s.sel) AS entry, IFNULL(g.is_group, 0) AS is_group, " +
		"CASE WHEN g.is_group = 1 THEN l.name ELSE IFNULL(g.name, s.sel) END AS leaf " +
		"FROM s LEFT JOIN `tabWarehouse` g ON g.name = s.sel " +
		"LEFT JOIN `tabWarehouse` l ON g.is_group = 1 AND l.is_group = 0 AND l.lft > g.lft AND l.rgt < g.rgt) " +
		"SELECT STRAIGHT_JOIN " + stockRowBin + ", b.item_code, m.entry, m.is_group, b.warehouse, b.actual_qty, b.projected_qty, b.reserved_qty " +
		"FROM `tabBin` b JOIN m ON m.leaf = b.warehouse WHERE b.item_code IN (" + in + ") " +
		"UNION ALL " +
		"SELECT DISTINCT " + stockRowWarehouse + ", NULL, entry, is_group, NULL, NULL, NULL, NULL FROM m"
	return q, append(anySlice(selected), codeArgs...)
}

// stockLists writes the stock entries and the stock total of every item on
// the page from its Bins, placed, and p.warehouses (the selected warehouses;
// none: an entry per Bin). A quantity that cannot be sent is the problem of
// its item.
func (p *page) stockLists(bins []binRow) {
	p.bins = bins
	for i := range bins {
		bins[i].parse()
	}
	slices.SortStableFunc(bins, func(a, b binRow) int {
		if a.item != b.item {
			return a.item - b.item
		}
		if c := strings.Compare(a.entryName(), b.entryName()); c != 0 {
			return c
		}
		return strings.Compare(a.warehouse, b.warehouse)
	})
	whs := p.selectedWarehouses()
	entries := p.entries[:0]
	var leaves []int // scratch: positions in the item's bins of the Bins stock_total counts
	for item := range p.items {
		n := 0
		for n < len(bins) && bins[n].item == item {
			n++
		}
		own := bins[:n]
		bins = bins[n:]
		if len(whs) > 0 {
			entries = p.selectedStock(entries, item, whs, own)
		} else {
			entries = p.binStock(entries, item, own)
		}
		leaves = p.stockTotal(item, own, leaves[:0])
	}
	p.lists(entries, func(it *itemAt, l span) { it.stock = l })
	p.entries = entries
}

// selectedWarehouses sorts and compacts p.warehouses, by name.
func (p *page) selectedWarehouses() []stockWarehouse {
	whs := p.warehouses
	slices.SortFunc(whs, func(a, b stockWarehouse) int { return strings.Compare(a.name, b.name) })
	whs = slices.CompactFunc(whs, func(a, b stockWarehouse) bool { return a.name == b.name })
	p.warehouses = whs
	return whs
}

// selectedStock appends item's entry for each selected warehouse whs, in
// their order, from its Bins (sorted by entry and warehouse).
func (p *page) selectedStock(entries []entryAt, item int, whs []stockWarehouse, bins []binRow) []entryAt {
	j := 0
	for _, w := range whs {
		for j < len(bins) && bins[j].entryName() < w.name {
			j++ // another spelling of a selected name, merged with this one by the query (DISTINCT): the same Bins
		}
		k := j
		for k < len(bins) && bins[k].entryName() == w.name {
			k++
		}
		entries = append(entries, p.stockEntry(item, w.name, w.group, bins[j:k]))
		j = k
	}
	return entries
}

// binStock appends item's entries when no warehouse is selected: one per
// Bin, and one per group warehouse that has a Bin of its own, summing its
// leaves.
func (p *page) binStock(entries []entryAt, item int, bins []binRow) []entryAt {
	for len(bins) > 0 {
		name := bins[0].entryName()
		k, group := 0, false
		for k < len(bins) && bins[k].entryName() == name {
			group = group || bins[k].group
			k++
		}
		if group {
			entries = append(entries, p.stockEntry(item, name, true, bins[:k]))
		} else {
			for i := range k {
				entries = append(entries, p.stockEntry(item, name, false, bins[i:i+1]))
			}
		}
		bins = bins[k:]
	}
	return entries
}

// stockEntry writes item's entry for the warehouse name: a leaf's (or a
// warehouse's with no tabWarehouse row) from its Bin as read, a group's from
// the sums over the Bins of its leaves (bins, sorted by warehouse; each
// warehouse counted once). A warehouse with no Bin has zeros.
func (p *page) stockEntry(item int, name string, group bool, bins []binRow) entryAt {
	code := p.codes[item]
	qtys := stockQtys()
	var raw *[numStockQtys]sql.NullString // a leaf's Bin, written as read
	var sums [numStockQtys]decimalSum
	var available decimalSum
	if !group && len(bins) > 0 {
		raw = &bins[0].qty
		available = bins[0].available
	} else {
		prev := ""
		for i := range bins {
			b := &bins[i]
			if b.noBin || (i > 0 && b.warehouse == prev) {
				continue
			}
			prev = b.warehouse
			p.addLeaf(item, b, &sums, &available)
		}
	}
	qty := func(i int) {
		p.appendName(qtys[i].name, i != qtyActual)
		if raw != nil {
			p.stockDecimal(item, code, qtys[i].field, qtys[i].column, raw[i])
		} else {
			p.appendSum(item, code, qtys[i].field, qtys[i].column, &sums[i])
		}
	}
	e := entryAt{item: item, span: span{start: len(p.arena)}}
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	qty(qtyActual)
	p.appendName("available_qty", true)
	p.appendSum(item, code, "stock.available_qty", qtys[qtyActual].column, &available)
	p.appendName("is_group", true)
	p.arena = strconv.AppendBool(p.arena, group)
	qty(qtyProjected)
	qty(qtyReserved)
	p.appendName("warehouse", true)
	p.appendString(code, "stock.warehouse", name, true)
	p.arena = append(p.arena, '}')
	e.end = len(p.arena)
	return e
}

// stockTotal writes item's stock_total: the sums over the Bins its entries
// count (bins; a Bin that two entries count, as a selected group and its
// selected leaf, once). leaves is scratch space, returned for reuse.
func (p *page) stockTotal(item int, bins []binRow, leaves []int) []int {
	for i := range bins {
		if !bins[i].noBin {
			leaves = append(leaves, i)
		}
	}
	slices.SortFunc(leaves, func(a, b int) int { return strings.Compare(bins[a].warehouse, bins[b].warehouse) })
	var sums [numStockQtys]decimalSum
	var available decimalSum
	for k, i := range leaves {
		if k > 0 && bins[i].warehouse == bins[leaves[k-1]].warehouse {
			continue // one Bin per item and warehouse: the same Bin
		}
		p.addLeaf(item, &bins[i], &sums, &available)
	}
	code := p.codes[item]
	qtys := stockQtys()
	it := &p.items[item]
	it.totals.start = len(p.arena)
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	p.appendName(qtys[qtyActual].name, false)
	p.appendSum(item, code, qtys[qtyActual].totalField, qtys[qtyActual].column, &sums[qtyActual])
	p.appendName("available_qty", true)
	p.appendSum(item, code, "stock_total.available_qty", qtys[qtyActual].column, &available)
	for _, i := range [...]int{qtyProjected, qtyReserved} {
		p.appendName(qtys[i].name, true)
		p.appendSum(item, code, qtys[i].totalField, qtys[i].column, &sums[i])
	}
	p.arena = append(p.arena, '}')
	it.totals.end = len(p.arena)
	return leaves
}

// addLeaf adds the quantities of the Bin b of item to sums, and its
// available quantity to available. A quantity that is no decimal is the
// item's problem (and is not added).
func (p *page) addLeaf(item int, b *binRow, sums *[numStockQtys]decimalSum, available *decimalSum) {
	for i, v := range b.qty {
		switch {
		case !v.Valid:
		case b.fits[i]:
			sums[i].addScaled(b.scaled[i], true, v.String)
		case !plainDecimal(v.String):
			p.setProblem(item, buildError(stockQtys()[i].column, v.String, decimalReason))
		default:
			sums[i].add(v.String)
		}
	}
	available.addSum(&b.available)
}

// leafAvailable is what a shop can sell from a leaf warehouse's Bin
// quantities: actual_qty − reserved_qty, never below 0 (NULL counts as 0).
func leafAvailable(qty *[numStockQtys]sql.NullString) decimalSum {
	b := binRow{qty: *qty}
	b.parse()
	return b.available
}

// appendSum appends the sum s, a quantity of item, as stockDecimal does,
// without making its text a string when the page has met it already.
func (p *page) appendSum(item int, code, field, column string, s *decimalSum) {
	var buf [32]byte
	b := s.appendText(buf[:0])
	if out, ok := appendShortDecimal(p.arena, b); ok {
		p.arena = out
		return
	}
	if js, ok := p.dec[string(b)]; ok {
		p.arena = append(p.arena, js...)
		return
	}
	p.stockDecimal(item, code, field, column, sql.NullString{String: string(b), Valid: true})
}

// stockDecimal appends a quantity of item, whose problem it is when it cannot
// be sent.
func (p *page) stockDecimal(item int, code, field, column string, v sql.NullString) {
	if pr := p.appendDecimal(code, field, column, v); pr != nil {
		p.setProblem(item, pr)
	}
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

// addScaled adds the DECIMAL text v, whose parseScaled value is x when fits,
// as add(v) does, without reading v again when it fits.
func (s *decimalSum) addScaled(x int64, fits bool, v string) {
	if fits && s.rat == nil {
		if sum := s.scaled + x; (x >= 0) == (sum >= s.scaled) { // no overflow
			s.scaled = sum
			return
		}
	}
	s.add(v)
}

// subScaled subtracts v as addScaled adds it.
func (s *decimalSum) subScaled(x int64, fits bool, v string) {
	if fits && s.rat == nil {
		if diff := s.scaled - x; (x >= 0) == (diff <= s.scaled) { // no overflow
			s.scaled = diff
			return
		}
	}
	s.sub(v)
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
	var buf [32]byte
	return string(s.appendText(buf[:0]))
}

// appendText appends text() to b.
func (s *decimalSum) appendText(b []byte) []byte {
	if s.rat != nil {
		return append(b, s.rat.FloatString(9)...)
	}
	u := uint64(s.scaled)
	if s.scaled < 0 {
		u = -u
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, u/decimalScale, 10)
	var frac [10]byte
	digits := strconv.AppendUint(frac[:0], decimalScale+u%decimalScale, 10) // "1" and 9 digits
	b = append(b, '.')
	return append(b, digits[1:]...)
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

// sub subtracts the DECIMAL text v, as add adds it.
func (s *decimalSum) sub(v string) {
	if s.rat == nil {
		if x, ok := parseScaled(v); ok {
			if diff := s.scaled - x; (x >= 0) == (diff <= s.scaled) { // no overflow
				s.scaled = diff
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
		s.rat.Sub(s.rat, &r)
	}
}

// addSum adds the sum o.
func (s *decimalSum) addSum(o *decimalSum) {
	if s.rat == nil && o.rat == nil {
		if sum := s.scaled + o.scaled; (o.scaled >= 0) == (sum >= s.scaled) { // no overflow
			s.scaled = sum
			return
		}
	}
	if s.rat == nil {
		s.rat = new(big.Rat).SetFrac(big.NewInt(s.scaled), big.NewInt(decimalScale))
	}
	if o.rat != nil {
		s.rat.Add(s.rat, o.rat)
		return
	}
	s.rat.Add(s.rat, new(big.Rat).SetFrac(big.NewInt(o.scaled), big.NewInt(decimalScale)))
}

// negative reports whether the sum is below 0.
func (s *decimalSum) negative() bool {
	if s.rat != nil {
		return s.rat.Sign() < 0
	}
	return s.scaled < 0
}
