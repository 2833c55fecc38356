package detector

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderweave/erpsync/signer"
)

// effective_prices is the one price ERPNext would quote today, per selected
// price list, to a walk-in customer (no customer, no supplier) for qty 1 of
// the item in its sales UOM (its stock UOM when it has none), no batch: what
// erpnext/stock/get_item_details.py get_price_list_rate does (FINDINGS §8.3):
//
//   - get_price_list_rate_for(args, item): get_item_price's first row for U
//     (quoteRow, before), used only when qty 1 is a multiple of its
//     packing_unit (else nothing is quoted: there is no fallback); when there
//     is no row for U and U is not the stock UOM, the first row for the stock
//     UOM. The rate is price_list_rate when the row's uom is U, else
//     price_list_rate × the conversion factor of U;
//   - a variant with no quote of its own in a list is quoted its template's
//     (get_price_list_rate: `if price_list_rate is None and
//     item_doc.variant_of`), with its own U and conversion factor;
//   - a disabled price list, or one without a tabPrice List row, quotes
//     nothing (get_price_list_details: "Price List {0} is disabled or does
//     not exist").
//
// "Today" is the site's date by the database server's clock (as Detector.Now
// reads it), read once per page, by the page's tabItem query (readItems).

// quoteRow is what the choice of a price and changesOn need of one selected
// tabItem Price row.
type quoteRow struct {
	item     int            // the page item whose own row it is; -1 for a template's row, or none on the page
	template int            // for a template's row, the template's position in the price query's templates; else -1
	list     string         // tabPrice List.name of the row's list; "" when the list has no row
	enabled  bool           // the list has a row and is enabled
	walkIn   bool           // no customer, supplier or batch: a row get_item_price may quote a walk-in customer
	uom      sql.NullString // as stored: NULL, "" or a UOM
	from     sql.NullString // valid_from, DATE text or NULL
	upto     sql.NullString // valid_upto, DATE text or NULL
	packing  string         // packing_unit, integer text
	rate     string         // price_list_rate, DECIMAL text
	currency sql.NullString
	name     string
}

func newQuoteRow(item, template int, c *priceColumns) quoteRow {
	return quoteRow{
		item: item, template: template, list: c.list.String, enabled: c.list.Valid && check(c.enabled),
		walkIn: blank(c.cust) && blank(c.supp) && blank(c.batch),
		uom:    c.uom, from: c.from, upto: c.upto, packing: c.packing.String, rate: c.rate.String, currency: c.currency, name: c.name,
	}
}

// blank is SQL's IFNULL(v, "") = "" under ERPNext's collation, which pads
// with spaces (PAD SPACE): NULL, "" and only spaces.
func blank(v sql.NullString) bool { return !v.Valid || strings.TrimRight(v.String, " ") == "" }

// sameUOM is SQL's comparison of a uom column with a UOM name. Frappe stores
// a Link as the linked document's name (it sets the field to the name the
// database found on every save), so tabItem Price.uom, tabItem.stock_uom and
// sales_uom and tabUOM Conversion Detail.uom are spelt as the tabUOM row
// is; only the trailing spaces that the collation ignores (PAD SPACE) are
// ignored here. Spellings the collation would also match (case, accents)
// only arise from raw SQL, and such a row is not matched.
func sameUOM(a, b string) bool { return strings.TrimRight(a, " ") == strings.TrimRight(b, " ") }

// validOn reports whether r is valid on day (YYYY-MM-DD): get_item_price's
// IFNULL(valid_from, '2000-01-01') <= day AND IFNULL(valid_upto,
// '2500-12-31') >= day. DATE texts compare as the dates do.
func (r *quoteRow) validOn(day string) bool {
	from, upto := "2000-01-01", "2500-12-31"
	if r.from.Valid {
		from = r.from.String
	}
	if r.upto.Valid {
		upto = r.upto.String
	}
	return from <= day && upto >= day
}

// forUOM is get_item_price's IFNULL(uom, "") IN ("", u).
func (r *quoteRow) forUOM(u string) bool { return blank(r.uom) || sameUOM(r.uom.String, u) }

// before reports whether get_item_price returns a before b: ORDER BY
// valid_from DESC, IFNULL(batch_no, "") DESC, uom DESC (NULL is the lowest
// value, so last). The candidates have no batch, so the batch never decides.
// ERPNext leaves rows equal on those keys in no defined order (whatever the
// query plan gives); they are taken here by row name, ascending, so that the
// choice does not change from one build to the next.
func before(a, b *quoteRow) bool {
	if c := compareNullable(a.from, b.from); c != 0 {
		return c > 0
	}
	if c := compareNullable(a.uom, b.uom); c != 0 {
		return c > 0
	}
	return a.name < b.name
}

// compareNullable orders NULL below every text, and texts as the collation
// orders the candidates' values: dates as text; uoms, which are blank or one
// UOM (forUOM), by blankness, trailing spaces ignored (PAD SPACE).
func compareNullable(a, b sql.NullString) int {
	switch {
	case !a.Valid || !b.Valid:
		return boolInt(a.Valid) - boolInt(b.Valid)
	case blank(a) || blank(b):
		return boolInt(!blank(a)) - boolInt(!blank(b))
	}
	return strings.Compare(strings.TrimRight(a.String, " "), strings.TrimRight(b.String, " "))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// firstFor is the position of the row get_item_price returns first for a
// walk-in customer on day in uom u, or -1 when it returns none.
func firstFor(rows []quoteRow, day, u string) int {
	best := -1
	for i := range rows {
		r := &rows[i]
		if !r.walkIn || !r.validOn(day) || !r.forUOM(u) {
			continue
		}
		if best < 0 || before(r, &rows[best]) {
			best = i
		}
	}
	return best
}

// chooseQuote is the position of the row get_price_list_rate_for quotes from
// rows (the selected rows of one item in one price list) on day, qty 1, in
// uom u, the item's stock UOM being stockUOM; -1 when it quotes nothing.
func chooseQuote(rows []quoteRow, day, u, stockUOM string) int {
	if i := firstFor(rows, day, u); i >= 0 {
		if !packsOne(rows[i].packing) {
			return -1 // check_packing_list failed: ERPNext quotes nothing, and looks no further
		}
		return i
	}
	if u != stockUOM { // Python's !=, on the texts
		return firstFor(rows, day, stockUOM) // no packing check on this lookup
	}
	return -1
}

// packsOne is check_packing_list for qty 1: packing_unit 0 (unset) passes,
// and otherwise 1 % packing_unit must be 0 (Python's %: so 1 and -1 pass).
func packsOne(packing string) bool {
	n, err := strconv.ParseInt(strings.TrimSpace(packing), 10, 64)
	return err != nil || n == 0 || n == 1 || n == -1
}

// quotedRate is the rate get_price_list_rate_for returns for row r quoted in
// uom u: price_list_rate when the row's uom is u (Python's ==, on the texts),
// else price_list_rate × factor, the conversion factor of u ("" for 1).
// ERPNext multiplies a row of the stock UOM, or of no UOM, whatever the Price
// List's price_not_uom_dependent: the flag it tests,
// args.price_list_uom_dependant, is never set (FINDINGS §8.3; erpnext PR
// #33696 was closed). It computes in floats; this is exact.
func quotedRate(r *quoteRow, u, factor string) (string, *BuildError) {
	if (r.uom.Valid && r.uom.String == u) || factor == "" {
		return r.rate, nil
	}
	out, ok := mulDecimal(r.rate, factor)
	if !ok {
		if _, _, ok := splitPlainDecimal(r.rate); !ok {
			return "", buildError("tabItem Price.price_list_rate", r.rate, decimalReason)
		}
		return "", buildError("tabUOM Conversion Detail.conversion_factor", factor, decimalReason)
	}
	return out, nil
}

// mulDecimal multiplies two decimal texts ([+-]digits[.digits]) exactly. It
// reports false when either is no such text.
func mulDecimal(a, b string) (string, bool) {
	x, xs, ok := splitPlainDecimal(a)
	if !ok {
		return "", false
	}
	y, ys, ok := splitPlainDecimal(b)
	if !ok {
		return "", false
	}
	return formatScaled(x.Mul(x, y), xs+ys), true
}

// splitPlainDecimal reads [+-]digits[.digits] (either run of digits may be
// empty, not both) as n × 10^-scale.
func splitPlainDecimal(s string) (n *big.Int, scale int, ok bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	digits := whole + frac
	if digits == "" {
		return nil, 0, false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
	}
	n, ok = new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, 0, false
	}
	if neg {
		n.Neg(n)
	}
	return n, len(frac), true
}

// formatScaled writes n × 10^-scale as a decimal text with scale decimals.
func formatScaled(n *big.Int, scale int) string {
	digits := new(big.Int).Abs(n).String()
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	out := digits[:len(digits)-scale]
	if scale > 0 {
		out += "." + digits[len(digits)-scale:]
	}
	if n.Sign() < 0 {
		out = "-" + out
	}
	return out
}

// zeroDecimal reports whether a decimal text is zero (or empty), which
// ERPNext's get_conversion_factor takes as no factor.
func zeroDecimal(s string) bool {
	return strings.Trim(strings.TrimLeft(s, "+-"), "0.") == ""
}

// salesUOMOrStock is the UOM a shop sells the item in (U): its sales_uom,
// else its stock UOM.
func (it *itemAt) salesUOMOrStock() string {
	if it.salesUOM != "" {
		return it.salesUOM
	}
	return it.stockUOM
}

// effectivePrices writes effective_prices and sets changesOn of each item
// named codes (queried marks them), from own (the items' own selected rows,
// placed) and tmpl (the selected rows of templates, the price query's
// templates). It sorts both.
func (p *page) effectivePrices(ctx context.Context, codes []string, queried []bool, templates []string, own, tmpl []quoteRow) error {
	own = slices.DeleteFunc(own, func(r quoteRow) bool { return r.item < 0 })
	sortQuotes(own, false)
	sortQuotes(tmpl, true)
	ownAt := quoteRanges(own, len(p.items), false)
	tmplAt := quoteRanges(tmpl, len(templates), true)
	// The template rows of item i: a queried template's own rows, else the
	// rows read for it as a template.
	templateRows := func(i int) []quoteRow {
		t := p.items[i].variantOf
		if t == "" {
			return nil
		}
		if j, ok := p.index[t]; ok && queried[j] {
			return own[ownAt[j].start:ownAt[j].end]
		}
		if k, ok := slices.BinarySearch(templates, t); ok {
			return tmpl[tmplAt[k].start:tmplAt[k].end]
		}
		return nil
	}
	today, err := p.today(ctx, len(own)+len(tmpl) > 0, queried)
	if err != nil {
		return err
	}
	factors, err := p.readFactors(ctx, queried, func(i int) bool {
		return ownAt[i].end > ownAt[i].start || len(templateRows(i)) > 0
	})
	if err != nil {
		return err
	}
	for i := range p.items {
		if !queried[i] {
			continue
		}
		rows, trows := own[ownAt[i].start:ownAt[i].end], templateRows(i)
		it := &p.items[i]
		it.changesOn = changesOn(today, it.endOfLife, rows, trows)
		if len(rows)+len(trows) > 0 {
			p.writeEffective(i, today, factors[i], rows, trows)
		}
	}
	return nil
}

// owner is the row's template when byTemplate, else its item.
func (r *quoteRow) owner(byTemplate bool) int {
	if byTemplate {
		return r.template
	}
	return r.item
}

// sortQuotes sorts rows by owner (template when byTemplate, else item), then
// price list in JCS order (that of effective_prices' keys), then name.
func sortQuotes(rows []quoteRow, byTemplate bool) {
	slices.SortFunc(rows, func(a, b quoteRow) int {
		if c := a.owner(byTemplate) - b.owner(byTemplate); c != 0 {
			return c
		}
		if c := signer.CompareKeys(a.list, b.list); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
}

// quoteRanges is, for each owner 0..n-1 (as sortQuotes), where its rows are
// in rows, sorted by owner.
func quoteRanges(rows []quoteRow, n int, byTemplate bool) []span {
	at := make([]span, n)
	for start := 0; start < len(rows); {
		o := rows[start].owner(byTemplate)
		end := start + 1
		for end < len(rows) && rows[end].owner(byTemplate) == o {
			end++
		}
		at[o] = span{start, end}
		start = end
	}
	return at
}

// today is the site's date by the database's clock, read when needed: when
// some price row was read or some queried item has an end_of_life.
func (p *page) today(ctx context.Context, rows bool, queried []bool) (string, error) {
	need := rows
	for i := 0; !need && i < len(p.items); i++ {
		need = queried[i] && p.items[i].endOfLife != ""
	}
	if !need {
		return "", nil
	}
	if p.utcNow != "" {
		return p.d.siteDate(p.utcNow)
	}
	now, err := p.d.Now(ctx)
	if err != nil {
		return "", err
	}
	return now[:len(time.DateOnly)], nil
}

// siteDate is the site's date (YYYY-MM-DD) at utc, UTC_TIMESTAMP(6)'s text,
// as Detector.Now gives it.
func (d *Detector) siteDate(utc string) (string, error) {
	u, err := time.ParseInLocation(ModifiedLayout, normModified(utc), time.UTC)
	if err != nil {
		return "", fmt.Errorf("read database clock: parse %q: %w", utc, err)
	}
	return u.In(d.loc).Format(time.DateOnly), nil
}

// changesOn is the first date after today on which a price row's validity
// window opens (valid_from) or closes (valid_upto + 1 day), or the item
// reaches its end_of_life eol: "" when there is none.
func changesOn(today, eol string, rowSets ...[]quoteRow) string {
	next := ""
	consider := func(day string) {
		if day > today && (next == "" || day < next) {
			next = day
		}
	}
	if eol != "" {
		consider(eol)
	}
	for _, rows := range rowSets {
		for i := range rows {
			if d, ok := dateOf(rows[i].from); ok {
				consider(d)
			}
			if d, ok := dateOf(rows[i].upto); ok {
				if n, ok := nextDay(d); ok {
					consider(n)
				}
			}
		}
	}
	return next
}

// nextDay is the calendar day after day (YYYY-MM-DD); false past 9999-12-31.
func nextDay(day string) (string, bool) {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return "", false
	}
	t = t.AddDate(0, 0, 1)
	if t.Year() > 9999 {
		return "", false
	}
	return t.Format(time.DateOnly), true
}

// writeEffective writes the effective_prices of item i from its own rows and
// its template's trows, both sorted by list in JCS order: for each enabled
// list, its own quote, else (a variant) its template's.
func (p *page) writeEffective(i int, today, factor string, rows, trows []quoteRow) {
	it := &p.items[i]
	code, u := p.codes[i], it.salesUOMOrStock()
	start, n := len(p.arena), 0
	p.arena = append(p.arena, '{')
	for len(rows) > 0 || len(trows) > 0 {
		list := nextList(rows, trows)
		ownL, tmplL := listPrefix(rows, list), listPrefix(trows, list)
		rows, trows = rows[len(ownL):], trows[len(tmplL):]
		if list == "" || !(anyEnabled(ownL) || anyEnabled(tmplL)) {
			continue
		}
		r, inherited := chooseQuote(ownL, today, u, it.stockUOM), false
		if r < 0 && it.variantOf != "" {
			ownL = tmplL
			r, inherited = chooseQuote(tmplL, today, u, it.stockUOM), true
		}
		if r < 0 {
			continue
		}
		if n > 0 {
			p.arena = append(p.arena, ',')
		}
		n++
		p.appendString(code, "effective_prices", list, true)
		p.arena = append(p.arena, ':')
		if pr := p.effectiveEntry(code, &ownL[r], u, factor, it.variantOf, inherited); pr != nil {
			p.setProblem(i, pr)
		}
	}
	if n == 0 {
		p.arena = p.arena[:start] // "{}" (assemble)
		return
	}
	p.arena = append(p.arena, '}')
	it.effective = span{start, len(p.arena)}
}

// nextList is the first list of rows and trows (each sorted by list, one of
// them not empty) in JCS order.
func nextList(rows, trows []quoteRow) string {
	switch {
	case len(rows) == 0:
		return trows[0].list
	case len(trows) == 0 || signer.CompareKeys(rows[0].list, trows[0].list) <= 0:
		return rows[0].list
	}
	return trows[0].list
}

// listPrefix is the leading rows of list.
func listPrefix(rows []quoteRow, list string) []quoteRow {
	n := 0
	for n < len(rows) && rows[n].list == list {
		n++
	}
	return rows[:n]
}

func anyEnabled(rows []quoteRow) bool {
	return slices.ContainsFunc(rows, func(r quoteRow) bool { return r.enabled })
}

// effectiveEntry writes one effective_prices entry, quoting row r in uom u
// (factor its conversion factor, "" for 1); inherited_from is template when
// inherited.
func (p *page) effectiveEntry(code string, r *quoteRow, u, factor, template string, inherited bool) *BuildError {
	rate, pr := quotedRate(r, u, factor)
	from, hasFrom := dateOf(r.from)
	upto, hasUpto := dateOf(r.upto)
	// Members in JCS order.
	p.arena = append(p.arena, '{')
	p.appendTextMember(code, "effective_prices.currency", "currency", r.currency, false)
	p.appendName("inherited_from", true)
	p.appendString(code, "effective_prices.inherited_from", template, inherited)
	p.appendName("rate", true)
	if pr == nil {
		pr = p.appendDecimal(code, "effective_prices.rate", "tabItem Price.price_list_rate", sql.NullString{String: rate, Valid: true})
	} else {
		p.arena = append(p.arena, "null"...) // unused: the item is a problem
	}
	p.appendName("uom", true)
	p.appendString(code, "effective_prices.uom", u, u != "")
	p.appendName("valid_from", true)
	p.appendString(code, "effective_prices.valid_from", from, hasFrom)
	p.appendName("valid_upto", true)
	p.appendString(code, "effective_prices.valid_upto", upto, hasUpto)
	p.arena = append(p.arena, '}')
	return pr
}

// readFactors reads, in one query, the conversion factor of the sales UOM of
// each queried item that sells in another UOM than its stock UOM and has
// price rows (priced): as ERPNext's get_conversion_factor, the item's
// tabUOM Conversion Detail row for that UOM, else (a variant) its template's
// (v15 asks for either, in no order; later versions take the variant's
// first, ordering by has_variants), else none. The result is indexed like p.items: "" where the factor is 1
// (the stock UOM, no row, or a zero factor, which get_conversion_factor
// replaces with 1). The tabUOM Conversion Factor table ERPNext falls back on
// is not read.
func (p *page) readFactors(ctx context.Context, queried []bool, priced func(i int) bool) ([]string, error) {
	factors := make([]string, len(p.items))
	var parents []string
	for i := range p.items {
		it := &p.items[i]
		if queried[i] && it.salesUOM != "" && it.salesUOM != it.stockUOM && priced(i) {
			parents = append(parents, p.codes[i])
			if it.variantOf != "" {
				parents = append(parents, it.variantOf)
			}
		}
	}
	if len(parents) == 0 {
		return factors, nil
	}
	slices.Sort(parents)
	parents = slices.Compact(parents)
	found, err := p.conversionFactors(ctx, parents)
	if err != nil {
		return nil, err
	}
	for i := range p.items {
		it := &p.items[i]
		if !queried[i] || it.salesUOM == "" || it.salesUOM == it.stockUOM {
			continue
		}
		u := strings.TrimRight(it.salesUOM, " ")
		f, ok := found[[2]string{p.codes[i], u}]
		if !ok && it.variantOf != "" {
			f, ok = found[[2]string{it.variantOf, u}]
		}
		if ok && !zeroDecimal(f) {
			factors[i] = f
		}
	}
	return factors, nil
}

// conversionFactors reads the tabUOM Conversion Detail rows of the items
// parents: (parent, uom without trailing spaces) -> conversion_factor, the
// first row by idx. ERPNext writes parent as the item's name, so the rows are
// matched with parents byte for byte.
func (p *page) conversionFactors(ctx context.Context, parents []string) (map[[2]string]string, error) {
	q := "SELECT parent, uom, conversion_factor FROM `tabUOM Conversion Detail` WHERE parent IN (" + placeholders(len(parents)) +
		") AND parenttype = 'Item' AND parentfield = 'uoms' ORDER BY idx DESC, name DESC"
	rows, err := p.d.db.QueryContext(ctx, q, anySlice(parents)...)
	if err != nil {
		return nil, fmt.Errorf("read conversion factors of %s: %w", codeRange(parents), err)
	}
	defer rows.Close()
	found := map[[2]string]string{}
	var parent string
	var uom, factor sql.NullString
	for rows.Next() {
		if err := rows.Scan(&parent, &uom, &factor); err != nil {
			return nil, fmt.Errorf("read conversion factors of %s: %w", codeRange(parents), err)
		}
		found[[2]string{parent, strings.TrimRight(uom.String, " ")}] = factor.String // the last (lowest idx) wins
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read conversion factors of %s: %w", codeRange(parents), err)
	}
	return found, nil
}
