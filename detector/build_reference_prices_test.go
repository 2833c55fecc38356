package detector

// The reference of the price selection and of effective_prices: ERPNext's
// own queries (get_item_price, get_conversion_factor), one per item, list and
// lookup, as get_price_list_rate_for runs them, so that Build's choice in Go
// is checked against the database's filtering and ordering.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// refPriceSelected is the Selection of a price row: the named lists (the
// query selects them), else an enabled selling list with a tabPrice List row;
// never a supplier's row; a customer's only with CustomerPrices.
func (d *Detector) refPriceSelected(list, enabled, selling, cust, supp sql.NullString) bool {
	if strings.TrimSpace(supp.String) != "" {
		return false
	}
	if strings.TrimSpace(cust.String) != "" && !d.cfg.CustomerPrices {
		return false
	}
	return len(d.cfg.PriceLists) > 0 || (list.Valid && check(enabled) && check(selling))
}

// refEffectivePrices sets effective_prices of each item of codes.
func (d *Detector) refEffectivePrices(ctx context.Context, codes []string, items map[string]map[string]any, dec refDecimals) error {
	now, err := d.Now(ctx)
	if err != nil {
		return err
	}
	today := now[:10]
	for _, code := range codes {
		f := items[code]
		if f == nil {
			continue
		}
		stockUOM, _ := f["stock_uom"].(string)
		u, _ := f["sales_uom"].(string)
		if u == "" {
			u = stockUOM
		}
		template, _ := f["variant_of"].(string)
		factor, err := d.refConversionFactor(ctx, code, template, u, stockUOM)
		if err != nil {
			return err
		}
		lists, err := d.refQuotedLists(ctx, code, template)
		if err != nil {
			return err
		}
		eff := map[string]any{}
		for _, list := range lists {
			args := refQuoteArgs{list: list, uom: u, stockUOM: stockUOM, factor: factor, today: today}
			q, err := d.refPriceListRateFor(ctx, code, args)
			if err != nil {
				return err
			}
			inherited := any(nil)
			if q == nil && template != "" {
				if q, err = d.refPriceListRateFor(ctx, template, args); err != nil {
					return err
				}
				inherited = template
			}
			if q == nil {
				continue
			}
			rate, err := d.refCachedDecimal(dec, code, "effective_prices.rate", sql.NullString{String: q.rate, Valid: true})
			if err != nil {
				return err
			}
			var uom any
			if u != "" {
				uom = u
			}
			eff[list] = map[string]any{"currency": text(q.currency), "inherited_from": inherited, "rate": rate, "uom": uom,
				"valid_from": date(q.from), "valid_upto": date(q.upto)}
		}
		f["effective_prices"] = eff
	}
	return nil
}

// refQuotedLists are the enabled lists among the selected ones in which the
// item or its template has a selected row.
func (d *Detector) refQuotedLists(ctx context.Context, code, template string) ([]string, error) {
	q := "SELECT DISTINCT pl.name FROM `tabItem Price` ip JOIN `tabPrice List` pl ON pl.name = ip.price_list " +
		"WHERE ip.item_code IN (?, ?) AND pl.enabled = 1 AND IFNULL(ip.supplier, '') = ''"
	args := []any{code, template}
	if !d.cfg.CustomerPrices {
		q += " AND IFNULL(ip.customer, '') = ''"
	}
	if len(d.cfg.PriceLists) > 0 {
		q += " AND ip.price_list IN (" + placeholders(len(d.cfg.PriceLists)) + ")"
		args = append(args, anySlice(d.cfg.PriceLists)...)
	} else {
		q += " AND pl.selling = 1"
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

type refQuoteArgs struct {
	list, uom, stockUOM, factor, today string
}

type refQuote struct {
	rate           string
	currency       sql.NullString
	from, upto     sql.NullString
	uom            sql.NullString
	packingUnit    int64
	name, rawPrice string
}

// refPriceListRateFor is get_price_list_rate_for for a walk-in customer, qty
// 1, no batch: nil when it quotes nothing.
func (d *Detector) refPriceListRateFor(ctx context.Context, code string, a refQuoteArgs) (*refQuote, error) {
	q, err := d.refItemPrice(ctx, code, a.list, a.uom, a.today)
	if err != nil {
		return nil, err
	}
	if q != nil {
		if q.packingUnit != 0 && 1%q.packingUnit != 0 {
			return nil, nil
		}
	} else if a.uom != a.stockUOM {
		if q, err = d.refItemPrice(ctx, code, a.list, a.stockUOM, a.today); err != nil || q == nil {
			return nil, err
		}
	} else {
		return nil, nil
	}
	if q.uom.String == a.uom && q.uom.Valid {
		return q, nil
	}
	var r, f big.Rat
	if _, ok := r.SetString(q.rawPrice); !ok {
		return nil, fmt.Errorf("rate %q", q.rawPrice)
	}
	if _, ok := f.SetString(a.factor); !ok {
		return nil, fmt.Errorf("factor %q", a.factor)
	}
	q.rate = r.Mul(&r, &f).FloatString(18)
	return q, nil
}

// refItemPrice is get_item_price's first row, ties by name.
func (d *Detector) refItemPrice(ctx context.Context, code, list, uom, today string) (*refQuote, error) {
	q := &refQuote{}
	err := d.db.QueryRowContext(ctx, "SELECT name, price_list_rate, uom, packing_unit, currency, valid_from, valid_upto FROM `tabItem Price` "+
		"WHERE item_code = ? AND price_list = ? AND IFNULL(uom, '') IN ('', ?) AND IFNULL(batch_no, '') = '' "+
		"AND IFNULL(customer, '') = '' AND IFNULL(supplier, '') = '' "+
		"AND IFNULL(valid_from, '2000-01-01') <= ? AND IFNULL(valid_upto, '2500-12-31') >= ? "+
		"ORDER BY valid_from DESC, IFNULL(batch_no, '') DESC, uom DESC, name LIMIT 1",
		code, list, uom, today, today).Scan(&q.name, &q.rawPrice, &q.uom, &q.packingUnit, &q.currency, &q.from, &q.upto)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	q.rate = q.rawPrice
	return q, nil
}

// refConversionFactor is get_conversion_factor's factor of uom: the item's
// row, else its template's, else 1; 1 for the stock UOM and for a zero factor.
func (d *Detector) refConversionFactor(ctx context.Context, code, template, uom, stockUOM string) (string, error) {
	if uom == stockUOM {
		return "1", nil
	}
	for _, parent := range []string{code, template} {
		if parent == "" {
			continue
		}
		var f string
		err := d.db.QueryRowContext(ctx, "SELECT conversion_factor FROM `tabUOM Conversion Detail` WHERE parent = ? AND uom = ? "+
			"AND parenttype = 'Item' AND parentfield = 'uoms' ORDER BY idx LIMIT 1", parent, uom).Scan(&f)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", err
		}
		var r big.Rat
		if _, ok := r.SetString(f); ok && r.Sign() != 0 {
			return f, nil
		}
		return "1", nil
	}
	return "1", nil
}
