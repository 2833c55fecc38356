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

// Item is the whole current state of one ERPNext item, ready to serialise.
type Item struct {
	Code    string
	Deleted bool           // the item no longer exists in tabItem
	Fields  map[string]any // the item entry without op and version; nil when Deleted
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
// per page of codes. Codes that no longer exist in tabItem come back Deleted.
// The result is in the order of codes, without duplicates.
func (d *Detector) Build(ctx context.Context, codes []string) ([]Item, error) {
	codes = uniqueSorted(codes)
	out := make([]Item, 0, len(codes))
	for start := 0; start < len(codes); start += d.cfg.PageSize {
		end := min(start+d.cfg.PageSize, len(codes))
		page, err := d.buildPage(ctx, codes[start:end])
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
	}
	return out, nil
}

func (d *Detector) buildPage(ctx context.Context, codes []string) ([]Item, error) {
	if len(codes) == 0 {
		return nil, nil
	}
	items := make(map[string]map[string]any, len(codes))
	if err := d.readItems(ctx, codes, items); err != nil {
		return nil, err
	}
	present := make([]string, 0, len(items))
	for _, c := range codes {
		if items[c] != nil {
			present = append(present, c)
		}
	}
	if len(present) > 0 {
		if err := d.readBarcodes(ctx, present, items); err != nil {
			return nil, err
		}
		dec := make(decimals, 4*len(present))
		if err := d.readPrices(ctx, present, items, dec); err != nil {
			return nil, err
		}
		if err := d.readStock(ctx, present, items, dec); err != nil {
			return nil, err
		}
	}
	out := make([]Item, 0, len(codes))
	for _, c := range codes {
		if f := items[c]; f != nil {
			out = append(out, Item{Code: c, Fields: f})
		} else {
			out = append(out, Item{Code: c, Deleted: true})
		}
	}
	return out, nil
}

func (d *Detector) readItems(ctx context.Context, codes []string, items map[string]map[string]any) error {
	cols := []string{"name", "item_name", "item_group", "brand", "description", "stock_uom", "disabled",
		"is_stock_item", "is_sales_item", "has_variants", "variant_of", "end_of_life", "image", "modified"}
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
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read items %s: %w", codeRange(codes), err)
		}
		code := vals[0].String
		f := map[string]any{
			"item_code":     code,
			"item_name":     text(vals[1]),
			"item_group":    text(vals[2]),
			"brand":         text(vals[3]),
			"description":   text(vals[4]),
			"stock_uom":     text(vals[5]),
			"disabled":      check(vals[6]),
			"is_stock_item": check(vals[7]),
			"is_sales_item": check(vals[8]),
			"has_variants":  check(vals[9]),
			"variant_of":    text(vals[10]),
			"end_of_life":   date(vals[11]),
			"image":         d.imageURL(vals[12]),
			"modified":      d.rfc3339(vals[13]),
			"barcodes":      []any{},
			"prices":        []any{},
			"stock":         []any{},
		}
		for i, ef := range d.extra {
			v, err := d.extraValue(code, ef, vals[base+i])
			if err != nil {
				return err
			}
			f[ef.name] = v
		}
		items[code] = f
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read items %s: %w", codeRange(codes), err)
	}
	return nil
}

func (d *Detector) readBarcodes(ctx context.Context, codes []string, items map[string]map[string]any) error {
	q := "SELECT parent, barcode, barcode_type, uom FROM `tabItem Barcode` WHERE parent IN (" + placeholders(len(codes)) +
		") AND parenttype = 'Item' AND (parentfield = 'barcodes' OR parentfield IS NULL) ORDER BY parent, idx, barcode"
	rows, err := d.db.QueryContext(ctx, q, anySlice(codes)...)
	if err != nil {
		return fmt.Errorf("read barcodes of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	for rows.Next() {
		var parent string
		var barcode, typ, uom sql.NullString
		if err := rows.Scan(&parent, &barcode, &typ, &uom); err != nil {
			return fmt.Errorf("read barcodes of %s: %w", codeRange(codes), err)
		}
		f := items[parent]
		if f == nil || !barcode.Valid || barcode.String == "" {
			continue
		}
		f["barcodes"] = append(f["barcodes"].([]any), map[string]any{
			"barcode": barcode.String, "barcode_type": text(typ), "uom": text(uom),
		})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read barcodes of %s: %w", codeRange(codes), err)
	}
	return nil
}

type priceRow struct {
	key   [7]string // sort key: price list, customer, supplier, batch, uom, valid_from, name
	entry map[string]any
}

func (d *Detector) readPrices(ctx context.Context, codes []string, items map[string]map[string]any, dec decimals) error {
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
	byItem := map[string][]priceRow{}
	for rows.Next() {
		var code, name string
		var pl, cur, rate, uom, from, upto, cust, supp, batch sql.NullString
		if err := rows.Scan(&code, &name, &pl, &cur, &rate, &uom, &from, &upto, &cust, &supp, &batch); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
		r, err := d.cachedDecimal(dec, code, "prices.rate", rate)
		if err != nil {
			return err
		}
		byItem[code] = append(byItem[code], priceRow{
			key: [7]string{pl.String, cust.String, supp.String, batch.String, uom.String, from.String, name},
			entry: map[string]any{
				"price_list": text(pl), "currency": text(cur), "rate": r, "uom": text(uom),
				"valid_from": date(from), "valid_upto": date(upto),
				"customer": text(cust), "supplier": text(supp), "batch_no": text(batch),
			},
		})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	for code, prs := range byItem {
		f := items[code]
		if f == nil {
			continue
		}
		slices.SortFunc(prs, func(a, b priceRow) int { return slices.Compare(a.key[:], b.key[:]) })
		list := make([]any, len(prs))
		for i, p := range prs {
			list[i] = p.entry
		}
		f["prices"] = list
	}
	return nil
}

// stockQtys are the Bin quantities sent per warehouse and summed in
// stock_total, with the field names decimal reports them under.
func stockQtys() [numStockQtys]stockQty {
	return [numStockQtys]stockQty{
		{"actual_qty", "stock.actual_qty", "stock_total.actual_qty"},
		{"reserved_qty", "stock.reserved_qty", "stock_total.reserved_qty"},
		{"projected_qty", "stock.projected_qty", "stock_total.projected_qty"},
	}
}

const numStockQtys = 3

type stockQty struct{ name, field, totalField string }

func (d *Detector) readStock(ctx context.Context, codes []string, items map[string]map[string]any, dec decimals) error {
	q := "SELECT item_code, warehouse, actual_qty, reserved_qty, projected_qty FROM `tabBin` WHERE item_code IN (" +
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
	type bin struct {
		warehouse string
		qty       [numStockQtys]sql.NullString
	}
	byItem := map[string][]bin{}
	for rows.Next() {
		var code string
		var b bin
		var wh sql.NullString
		if err := rows.Scan(&code, &wh, &b.qty[0], &b.qty[1], &b.qty[2]); err != nil {
			return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
		}
		b.warehouse = wh.String
		byItem[code] = append(byItem[code], b)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
	}
	qtys := stockQtys()
	for _, code := range codes {
		f := items[code]
		bins := byItem[code]
		slices.SortFunc(bins, func(a, b bin) int { return strings.Compare(a.warehouse, b.warehouse) })
		var totals [numStockQtys]decimalSum
		list := make([]any, 0, len(bins))
		for _, b := range bins {
			e := make(map[string]any, 1+len(qtys))
			e["warehouse"] = b.warehouse
			for i, qty := range qtys {
				v, err := d.cachedDecimal(dec, code, qty.field, b.qty[i])
				if err != nil {
					return err
				}
				e[qty.name] = v
				if b.qty[i].Valid {
					totals[i].add(b.qty[i].String)
				}
			}
			list = append(list, e)
		}
		total := make(map[string]any, len(qtys))
		for i, qty := range qtys {
			v, err := d.cachedDecimal(dec, code, qty.totalField, sql.NullString{String: totals[i].text(), Valid: true})
			if err != nil {
				return err
			}
			total[qty.name] = v
		}
		f["stock"] = list
		f["stock_total"] = total
	}
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

// decimals remembers the JSON values of the exact DECIMAL texts met while
// building one page of items: quantities and prices repeat, and each
// signer.Decimal allocates.
type decimals map[string]any

// cachedDecimal is decimal, remembering exact values in dec. An inexact one
// is converted (and logged) for each item and field it appears in.
func (d *Detector) cachedDecimal(dec decimals, code, field string, v sql.NullString) (any, error) {
	if !v.Valid {
		return nil, nil
	}
	if out, ok := dec[v.String]; ok {
		return out, nil
	}
	out, exact, err := d.convertDecimal(code, field, v.String)
	if err == nil && exact {
		dec[v.String] = out
	}
	return out, err
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

// imageURL makes a site-relative file path absolute with erp.site_url.
func (d *Detector) imageURL(v sql.NullString) any {
	p := strings.TrimSpace(v.String)
	if p == "" {
		return nil
	}
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") || d.cfg.SiteURL == "" {
		return p
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.Contains(p, "%") {
		p = (&url.URL{Path: p}).EscapedPath()
	}
	return strings.TrimRight(d.cfg.SiteURL, "/") + p
}

// rfc3339 turns a naive `modified` in the site's zone into RFC 3339 with the
// site's UTC offset.
func (d *Detector) rfc3339(v sql.NullString) any {
	if !v.Valid || v.String == "" || strings.HasPrefix(v.String, "0000-00-00") {
		return nil
	}
	s := normModified(v.String)
	if out, ok := d.fastRFC3339(s); ok {
		return out
	}
	t, err := time.ParseInLocation(modifiedLayout, s, d.loc)
	if err != nil {
		return v.String
	}
	return t.Format(rfc3339Layout)
}

const rfc3339Layout = "2006-01-02T15:04:05.999999Z07:00"

// fastRFC3339 is time.ParseInLocation(modifiedLayout, s, d.loc) followed by
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

func date(v sql.NullString) any {
	if !v.Valid || v.String == "" || strings.HasPrefix(v.String, "0000-00-00") {
		return nil
	}
	if len(v.String) > 10 {
		return v.String[:10]
	}
	return v.String
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
