package detector

// The reference builder's storefront fields (see build_reference_test.go):
// slow and map-based, written apart from build_stock.go and
// build_children.go, so that TestBuildMatchesReference and
// TestBuildStorefrontMatchesReference compare two readings of the rules.

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// refWarehouse is a tabWarehouse row.
type refWarehouse struct {
	group    bool
	lft, rgt int
}

// refWarehouses reads the whole warehouse tree.
func (d *Detector) refWarehouses(ctx context.Context) (map[string]refWarehouse, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT name, is_group, lft, rgt FROM `tabWarehouse`")
	if err != nil {
		return nil, fmt.Errorf("read warehouses: %w", err)
	}
	defer rows.Close()
	tree := map[string]refWarehouse{}
	for rows.Next() {
		var name string
		var w refWarehouse
		if err := rows.Scan(&name, &w.group, &w.lft, &w.rgt); err != nil {
			return nil, fmt.Errorf("read warehouses: %w", err)
		}
		tree[name] = w
	}
	return tree, rows.Err()
}

// refAddBin adds a Bin's quantities (refStockQtys order: actual, reserved,
// projected) to sums, and max(0, actual − reserved) to available.
func refAddBin(sums *[numStockQtys]big.Rat, available *big.Rat, qty [numStockQtys]sql.NullString) {
	var vals [numStockQtys]big.Rat
	for i, v := range qty {
		if v.Valid {
			vals[i].SetString(v.String)
		}
		sums[i].Add(&sums[i], &vals[i])
	}
	var a big.Rat
	a.Sub(&vals[0], &vals[1])
	if a.Sign() > 0 {
		available.Add(available, &a)
	}
}

// refReadChildren sets uoms, attributes, images (and image, when private)
// and website.
func (d *Detector) refReadChildren(ctx context.Context, codes []string, items map[string]map[string]any, dec refDecimals) error {
	in := placeholders(len(codes))
	err := d.refEachRow(ctx, "SELECT parent, uom, conversion_factor FROM `tabUOM Conversion Detail` WHERE parent IN ("+in+
		") AND parenttype = 'Item' AND parentfield = 'uoms' ORDER BY parent, idx, name", codes, func(v []sql.NullString) error {
		f := items[v[0].String]
		if f == nil {
			return nil
		}
		cf, err := d.refCachedDecimal(dec, v[0].String, "uoms.conversion_factor", v[2])
		if err != nil {
			return err
		}
		f["uoms"] = append(f["uoms"].([]any), map[string]any{"uom": text(v[1]), "conversion_factor": cf})
		return nil
	})
	if err != nil {
		return err
	}
	err = d.refEachRow(ctx, "SELECT parent, attribute, attribute_value FROM `tabItem Variant Attribute` WHERE parent IN ("+in+
		") AND parenttype = 'Item' AND parentfield = 'attributes' ORDER BY parent, idx, name", codes, func(v []sql.NullString) error {
		if f := items[v[0].String]; f != nil {
			f["attributes"] = append(f["attributes"].([]any), map[string]any{"attribute": text(v[1]), "value": text(v[2])})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := d.refReadImages(ctx, codes, items); err != nil {
		return err
	}
	return d.refReadWebsite(ctx, codes, items)
}

// refEachRow calls fn with each row of q (all columns as text), run with
// codes.
func (d *Detector) refEachRow(ctx context.Context, q string, codes []string, fn func([]sql.NullString) error) error {
	rows, err := d.db.QueryContext(ctx, q, anySlice(codes)...)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// refPublicURL is the absolute URL of a stored file URL, nil when empty or
// private (its path starts with /private/files/).
func (d *Detector) refPublicURL(stored string) any {
	s := strings.TrimSpace(stored)
	path := s
	if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		path = u.Path
	} else if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if strings.HasPrefix(path, "/private/files/") {
		return nil
	}
	return d.imageURL(sql.NullString{String: s, Valid: true})
}

func (d *Detector) refReadImages(ctx context.Context, codes []string, items map[string]map[string]any) error {
	in := placeholders(len(codes))
	err := d.refEachRow(ctx, "SELECT name, image FROM `tabItem` WHERE name IN ("+in+")", codes, func(v []sql.NullString) error {
		f := items[v[0].String]
		if f == nil {
			return nil
		}
		f["image"] = d.refPublicURL(v[1].String)
		if f["image"] != nil {
			f["images"] = []any{f["image"]}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.refEachRow(ctx, "SELECT attached_to_name, file_url, is_private FROM `tabFile` WHERE attached_to_doctype = 'Item' AND attached_to_name IN ("+in+
		") ORDER BY attached_to_name, creation, name", codes, func(v []sql.NullString) error {
		f := items[v[0].String]
		if f == nil || check(v[2]) {
			return nil
		}
		u := d.refPublicURL(v[1].String)
		if u != nil && !slices.Contains(f["images"].([]any), u) {
			f["images"] = append(f["images"].([]any), u)
		}
		return nil
	})
}

func (d *Detector) refReadWebsite(ctx context.Context, codes []string, items map[string]map[string]any) error {
	if !d.store.website {
		return nil
	}
	return d.refEachRow(ctx, "SELECT item_code, published, route, web_item_name, website_image, description FROM `tabWebsite Item` WHERE item_code IN ("+
		placeholders(len(codes))+") ORDER BY item_code, published DESC, modified DESC, name", codes, func(v []sql.NullString) error {
		f := items[v[0].String]
		if f == nil || f["website"] != nil {
			return nil // the first row is the one sent
		}
		f["website"] = map[string]any{"published": check(v[1]), "route": text(v[2]), "web_item_name": text(v[3]),
			"website_image": d.refPublicURL(v[4].String), "description": text(v[5])}
		return nil
	})
}

// leafAvailable and the sums of available quantities (decimalSum's sub,
// addSum, negative) against big.Rat, as refAddBin computes them, across the
// int64 fast path and its overflow into big.Rat.
func TestLeafAvailableMatchesBigRat(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	texts := []string{"0", "-0.000000001", "0.000000001", "999999999.999999999", "-999999999.999999999",
		"999999999999.999999999", "-999999999999.999999999", "1.5", "+2", "abc", ""}
	pick := func() sql.NullString {
		switch r.IntN(6) {
		case 0:
			return sql.NullString{}
		case 1:
			return sql.NullString{String: texts[r.IntN(len(texts))], Valid: true}
		}
		whole := fmt.Sprint(r.Int64N([]int64{10, 1e9, 1e12}[r.IntN(3)]))
		if r.IntN(2) == 0 {
			whole = "-" + whole
		}
		return sql.NullString{String: whole + "." + fmt.Sprintf("%09d", r.IntN(1e9)), Valid: true}
	}
	// Sums that leave int64 (scaled by 10^9) on the way up and come back.
	var big12 decimalSum
	for range 12 {
		a := leafAvailable(&[numStockQtys]sql.NullString{qtyActual: {String: "999999999.999999999", Valid: true}})
		big12.addSum(&a)
	}
	if got, want := big12.text(), "11999999999.999999988"; got != want {
		t.Errorf("12 × 999999999.999999999 = %s, want %s", got, want)
	}
	for range 20000 {
		var total decimalSum
		var want big.Rat
		for range r.IntN(12) + 1 { // 10 × 999999999.999999999 leaves int64
			var qty [numStockQtys]sql.NullString
			qty[qtyActual], qty[qtyReserved] = pick(), pick()
			a := leafAvailable(&qty)
			total.addSum(&a)
			var sums [numStockQtys]big.Rat
			ref := [numStockQtys]sql.NullString{qty[qtyActual], qty[qtyReserved], {}} // refStockQtys order
			for i := range ref {
				if ref[i].Valid && !plainDecimal(ref[i].String) {
					ref[i] = sql.NullString{} // not a decimal: its item is a problem; nothing is added
				}
			}
			refAddBin(&sums, &want, ref)
		}
		if got := total.text(); got != want.FloatString(9) {
			t.Fatalf("available sum = %s, want %s", got, want.FloatString(9))
		}
	}
}
