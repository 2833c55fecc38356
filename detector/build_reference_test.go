package detector

// The item builder as it was before it wrote canonical JSON directly: maps of
// the item's fields, serialised with signer.Canonical. TestBuildMatchesReference
// checks that Build gives the very bytes it gave, so that content hashes
// stored by earlier versions stay valid and no item is resent on upgrade.

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// refItem is an item as the reference builder returns it.
type refItem struct {
	Code    string
	Deleted bool
	Fields  map[string]any
}

func (d *Detector) refBuildPage(ctx context.Context, codes []string) ([]refItem, error) {
	if len(codes) == 0 {
		return nil, nil
	}
	items := make(map[string]map[string]any, len(codes))
	if err := d.refReadItems(ctx, codes, items); err != nil {
		return nil, err
	}
	present := make([]string, 0, len(items))
	for _, c := range codes {
		if items[c] != nil {
			present = append(present, c)
		}
	}
	if len(present) > 0 {
		if err := d.refReadBarcodes(ctx, present, items); err != nil {
			return nil, err
		}
		dec := make(refDecimals, 4*len(present))
		if err := d.refReadPrices(ctx, present, items, dec); err != nil {
			return nil, err
		}
		if err := d.refEffectivePrices(ctx, present, items, dec); err != nil {
			return nil, err
		}
		if err := d.refReadStock(ctx, present, items, dec); err != nil {
			return nil, err
		}
		if err := d.refReadChildren(ctx, present, items, dec); err != nil {
			return nil, err
		}
	}
	out := make([]refItem, 0, len(codes))
	for _, c := range codes {
		if f := items[c]; f != nil {
			out = append(out, refItem{Code: c, Fields: f})
		} else {
			out = append(out, refItem{Code: c, Deleted: true})
		}
	}
	return out, nil
}

func (d *Detector) refReadItems(ctx context.Context, codes []string, items map[string]map[string]any) error {
	cols := []string{"name", "item_name", "item_group", "brand", "description", "stock_uom", "disabled",
		"is_stock_item", "is_sales_item", "has_variants", "variant_of", "end_of_life", "image", "modified", "sales_uom"}
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
			"item_code":        code,
			"item_name":        text(vals[1]),
			"item_group":       text(vals[2]),
			"brand":            text(vals[3]),
			"description":      text(vals[4]),
			"stock_uom":        text(vals[5]),
			"disabled":         check(vals[6]),
			"is_stock_item":    check(vals[7]),
			"is_sales_item":    check(vals[8]),
			"has_variants":     check(vals[9]),
			"variant_of":       text(vals[10]),
			"end_of_life":      date(vals[11]),
			"image":            d.imageURL(vals[12]),
			"modified":         d.rfc3339(vals[13]),
			"sales_uom":        text(vals[14]),
			"barcodes":         []any{},
			"prices":           []any{},
			"stock":            []any{},
			"effective_prices": map[string]any{},
			"uoms":             []any{},
			"attributes":       []any{},
			"images":           []any{},
			"website":          nil,
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

func (d *Detector) refReadBarcodes(ctx context.Context, codes []string, items map[string]map[string]any) error {
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

type refPriceRow struct {
	key   [7]string // sort key: price list, customer, supplier, batch, uom, valid_from, name
	entry map[string]any
}

func (d *Detector) refReadPrices(ctx context.Context, codes []string, items map[string]map[string]any, dec refDecimals) error {
	q := "SELECT ip.item_code, ip.name, ip.price_list, ip.currency, ip.price_list_rate, ip.uom, ip.valid_from, ip.valid_upto, ip.customer, ip.supplier, ip.batch_no, " +
		"ip.selling, ip.buying, pl.name, pl.enabled, pl.selling, pl.buying " +
		"FROM `tabItem Price` ip LEFT JOIN `tabPrice List` pl ON pl.name = ip.price_list WHERE ip.item_code IN (" + placeholders(len(codes)) + ")"
	args := anySlice(codes)
	if len(d.cfg.PriceLists) > 0 {
		q += " AND ip.price_list IN (" + placeholders(len(d.cfg.PriceLists)) + ")"
		args = append(args, anySlice(d.cfg.PriceLists)...)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	byItem := map[string][]refPriceRow{}
	for rows.Next() {
		var code, name string
		var pl, cur, rate, uom, from, upto, cust, supp, batch sql.NullString
		var rowSelling, rowBuying, list, enabled, selling, buying sql.NullString
		if err := rows.Scan(&code, &name, &pl, &cur, &rate, &uom, &from, &upto, &cust, &supp, &batch,
			&rowSelling, &rowBuying, &list, &enabled, &selling, &buying); err != nil {
			return fmt.Errorf("read prices of %s: %w", codeRange(codes), err)
		}
		if !d.refPriceSelected(list, enabled, selling, cust, supp) {
			continue
		}
		if !list.Valid { // no tabPrice List row: the row's own flags
			selling, buying = rowSelling, rowBuying
		}
		r, err := d.refCachedDecimal(dec, code, "prices.rate", rate)
		if err != nil {
			return err
		}
		byItem[code] = append(byItem[code], refPriceRow{
			key: [7]string{pl.String, cust.String, supp.String, batch.String, uom.String, from.String, name},
			entry: map[string]any{
				"price_list": text(pl), "currency": text(cur), "rate": r, "uom": text(uom),
				"valid_from": date(from), "valid_upto": date(upto),
				"customer": text(cust), "supplier": text(supp), "batch_no": text(batch),
				"selling": check(selling), "buying": check(buying),
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
		slices.SortFunc(prs, func(a, b refPriceRow) int { return slices.Compare(a.key[:], b.key[:]) })
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
func refStockQtys() [numStockQtys]refStockQty {
	return [numStockQtys]refStockQty{
		{"actual_qty", "stock.actual_qty", "stock_total.actual_qty"},
		{"reserved_qty", "stock.reserved_qty", "stock_total.reserved_qty"},
		{"projected_qty", "stock.projected_qty", "stock_total.projected_qty"},
	}
}

type refStockQty struct{ name, field, totalField string }

func (d *Detector) refReadStock(ctx context.Context, codes []string, items map[string]map[string]any, dec refDecimals) error {
	tree, err := d.refWarehouses(ctx)
	if err != nil {
		return err
	}
	q := "SELECT item_code, warehouse, actual_qty, reserved_qty, projected_qty FROM `tabBin` WHERE item_code IN (" +
		placeholders(len(codes)) + ")"
	rows, err := d.db.QueryContext(ctx, q, anySlice(codes)...)
	if err != nil {
		return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
	}
	defer rows.Close()
	byItem := map[string]map[string][numStockQtys]sql.NullString{} // item -> warehouse -> quantities in refStockQtys order
	for rows.Next() {
		var code string
		var wh sql.NullString
		var qty [numStockQtys]sql.NullString
		if err := rows.Scan(&code, &wh, &qty[0], &qty[1], &qty[2]); err != nil {
			return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
		}
		if byItem[code] == nil {
			byItem[code] = map[string][numStockQtys]sql.NullString{}
		}
		byItem[code][wh.String] = qty
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stock of %s: %w", codeRange(codes), err)
	}
	qtys := refStockQtys()
	// leavesOf is the leaf warehouses a warehouse's entry sums: a group's
	// leaves, or the warehouse itself.
	leavesOf := func(name string) []string {
		g, ok := tree[name]
		if !ok || !g.group {
			return []string{name}
		}
		var out []string
		for n, l := range tree {
			if !l.group && l.lft > g.lft && l.rgt < g.rgt {
				out = append(out, n)
			}
		}
		return out
	}
	for _, code := range codes {
		f := items[code]
		bins := byItem[code]
		var names []string
		if len(d.cfg.Warehouses) > 0 {
			names = uniqueSorted(d.cfg.Warehouses)
		} else {
			for wh := range bins {
				names = append(names, wh)
			}
			slices.Sort(names)
		}
		covered := map[string]bool{}
		list := make([]any, 0, len(names))
		for _, name := range names {
			var sums [numStockQtys]big.Rat
			var available big.Rat
			for _, leaf := range leavesOf(name) {
				qty, ok := bins[leaf]
				if !ok {
					continue
				}
				covered[leaf] = true
				refAddBin(&sums, &available, qty)
			}
			e := map[string]any{"warehouse": name, "is_group": tree[name].group}
			for i, qty := range qtys {
				v, err := d.refCachedDecimal(dec, code, qty.field, sql.NullString{String: sums[i].FloatString(9), Valid: true})
				if err != nil {
					return err
				}
				e[qty.name] = v
			}
			v, err := d.refCachedDecimal(dec, code, "stock.available_qty", sql.NullString{String: available.FloatString(9), Valid: true})
			if err != nil {
				return err
			}
			e["available_qty"] = v
			list = append(list, e)
		}
		var sums [numStockQtys]big.Rat
		var available big.Rat
		for leaf := range covered {
			refAddBin(&sums, &available, bins[leaf])
		}
		total := make(map[string]any, len(qtys)+1)
		for i, qty := range qtys {
			v, err := d.refCachedDecimal(dec, code, qty.totalField, sql.NullString{String: sums[i].FloatString(9), Valid: true})
			if err != nil {
				return err
			}
			total[qty.name] = v
		}
		v, err := d.refCachedDecimal(dec, code, "stock_total.available_qty", sql.NullString{String: available.FloatString(9), Valid: true})
		if err != nil {
			return err
		}
		total["available_qty"] = v
		f["stock"] = list
		f["stock_total"] = total
	}
	return nil
}

// decimals remembers the JSON values of the exact DECIMAL texts met while
// building one page of items: quantities and prices repeat, and each
// signer.Decimal allocates.
type refDecimals map[string]any

// cachedDecimal is decimal, remembering exact values in dec. An inexact one
// is converted (and logged) for each item and field it appears in.
func (d *Detector) refCachedDecimal(dec refDecimals, code, field string, v sql.NullString) (any, error) {
	if !v.Valid {
		return nil, nil
	}
	if out, ok := dec[v.String]; ok {
		return out, nil
	}
	out, exact, pr := d.convertDecimal(code, field, field, v.String)
	if pr != nil {
		return nil, pr
	}
	if exact {
		dec[v.String] = out
	}
	return out, nil
}

// rfc3339 is rfc3339Of as a JSON value: nil for none.
func (d *Detector) rfc3339(v sql.NullString) any {
	if s, ok := d.rfc3339Of(v); ok {
		return s
	}
	return nil
}

// date is dateOf as a JSON value: nil for none.
func date(v sql.NullString) any {
	if s, ok := dateOf(v); ok {
		return s
	}
	return nil
}

// imageURL is imageOf as a JSON value: nil for none.
func (d *Detector) imageURL(v sql.NullString) any {
	if s, ok := d.imageOf(v); ok {
		return s
	}
	return nil
}
