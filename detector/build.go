package detector

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
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

// InexactDecimal reports a DECIMAL value with more significant digits than a
// JSON number (an IEEE double) carries; it is sent as a string instead.
type InexactDecimal struct{ Code, Field, Value string }

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
		if err := d.readPrices(ctx, present, items); err != nil {
			return nil, err
		}
		if err := d.readStock(ctx, present, items); err != nil {
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

func (d *Detector) readPrices(ctx context.Context, codes []string, items map[string]map[string]any) error {
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
		r, err := d.decimal(code, "prices.rate", rate)
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
		sort.Slice(prs, func(i, j int) bool { return lessKey(prs[i].key[:], prs[j].key[:]) })
		list := make([]any, len(prs))
		for i, p := range prs {
			list[i] = p.entry
		}
		f["prices"] = list
	}
	return nil
}

// stockQtys are the Bin quantities sent per warehouse and summed in stock_total.
var stockQtys = [...]string{"actual_qty", "reserved_qty", "projected_qty"}

func (d *Detector) readStock(ctx context.Context, codes []string, items map[string]map[string]any) error {
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
		qty       [len(stockQtys)]sql.NullString
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
	for _, code := range codes {
		f := items[code]
		bins := byItem[code]
		sort.Slice(bins, func(i, j int) bool { return bins[i].warehouse < bins[j].warehouse })
		var totals [len(stockQtys)]big.Rat
		list := make([]any, 0, len(bins))
		for _, b := range bins {
			e := map[string]any{"warehouse": b.warehouse}
			for i, name := range stockQtys {
				v, err := d.decimal(code, "stock."+name, b.qty[i])
				if err != nil {
					return err
				}
				e[name] = v
				if b.qty[i].Valid {
					var r big.Rat
					if _, ok := r.SetString(b.qty[i].String); ok {
						totals[i].Add(&totals[i], &r)
					}
				}
			}
			list = append(list, e)
		}
		total := map[string]any{}
		for i, name := range stockQtys {
			v, err := d.decimal(code, "stock_total."+name, sql.NullString{String: totals[i].FloatString(9), Valid: true})
			if err != nil {
				return err
			}
			total[name] = v
		}
		f["stock"] = list
		f["stock_total"] = total
	}
	return nil
}

// decimal turns a DECIMAL column's text into a JSON value without losing digits.
func (d *Detector) decimal(code, field string, v sql.NullString) (any, error) {
	if !v.Valid {
		return nil, nil
	}
	out, exact, err := signer.Decimal(v.String)
	if err != nil {
		return nil, fmt.Errorf("item %s: %s: %w", code, field, err)
	}
	if !exact {
		d.logger.Warn("decimal has more digits than a JSON number carries exactly; sent as a string",
			"item", code, "field", field, "value", v.String)
	}
	return out, nil
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
	t, err := time.ParseInLocation(modifiedLayout, normModified(v.String), d.loc)
	if err != nil {
		return v.String
	}
	return t.Format("2006-01-02T15:04:05.999999Z07:00")
}

func text(v sql.NullString) any {
	if !v.Valid || v.String == "" {
		return nil
	}
	return v.String
}

func check(v sql.NullString) bool {
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

func lessKey(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
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
