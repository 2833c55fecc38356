package erpnext

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// The Item's child tables, as SaveItem writes them (F15 Document.update_child_table): every row given is
// written with the parent's `modified` and its position as idx; a row already stored (matched by its key
// column) keeps its name and creation, a new row gets a random hash name and the parent's creation and
// owner (set_user_and_timestamp), and stored rows not given any more are deleted with plain DELETEs.

// childSpec is one Table field of Item: its table, parentfield, the column a row is matched by, and the
// other columns a save writes (insertCols only when the row is inserted).
type childSpec struct {
	table, field, key string
	cols, insertCols  []string
}

// childRow is one row to write: its key, the values of the spec's cols and insertCols.
type childRow struct {
	key              string
	vals, insertVals []any
}

var (
	barcodeSpec   = childSpec{table: "tabItem Barcode", field: "barcodes", key: "barcode", cols: []string{"barcode_type", "uom"}}
	uomSpec       = childSpec{table: "tabUOM Conversion Detail", field: "uoms", key: "uom", cols: []string{"conversion_factor"}}
	attributeSpec = childSpec{table: "tabItem Variant Attribute", field: "attributes", key: "attribute",
		cols: []string{"attribute_value"}, insertCols: []string{"variant_of"}}
	// itemChildTables are the Item child tables the schema holds.
	itemChildTables = []childSpec{barcodeSpec, uomSpec, attributeSpec}
)

// checkChildren validates the child rows and dates of it as Item.validate does.
func checkChildren(it Item) error {
	seen := map[string]bool{}
	for _, b := range it.Barcodes {
		if b.Barcode == "" || seen[b.Barcode] {
			return fmt.Errorf("erpnext: item %s: empty or duplicate barcode %q", it.Code, b.Barcode)
		}
		seen[b.Barcode] = true
	}
	// validate_conversion_factor
	seen = map[string]bool{}
	for i, u := range it.UOMs {
		if u.UOM == "" || seen[u.UOM] {
			return fmt.Errorf("erpnext: item %s: Unit of Measure %q has been entered more than once in Conversion Factor Table", it.Code, u.UOM)
		}
		seen[u.UOM] = true
		if err := checkDecimal("conversion_factor", u.Factor); err != nil {
			return fmt.Errorf("erpnext: item %s: %w", it.Code, err)
		}
		if u.UOM == it.StockUOM && decimalCmp(u.Factor, "1") != 0 {
			return fmt.Errorf("erpnext: item %s: Conversion factor for default Unit of Measure must be 1 in row %d", it.Code, i+1)
		}
	}
	// validate_attributes
	seen = map[string]bool{}
	for _, a := range it.Attributes {
		if a.Attribute == "" || seen[a.Attribute] {
			return fmt.Errorf("erpnext: item %s: Attribute %q selected multiple times in Attributes Table", it.Code, a.Attribute)
		}
		seen[a.Attribute] = true
	}
	if it.EndOfLife != "" {
		if _, err := time.Parse(time.DateOnly, it.EndOfLife); err != nil {
			return fmt.Errorf("erpnext: item %s: end of life %q is not a date (YYYY-MM-DD)", it.Code, it.EndOfLife)
		}
	}
	return nil
}

// writeChildren writes the barcodes, UOMs and attributes of it, saved at now. isNew says the Item row was
// inserted by this save; uomChanged that the stock UOM of an existing item changed, which empties the UOM
// table before the stock UOM is added again (add_default_uom_in_conversion_factor_table).
func (s *Site) writeChildren(ctx context.Context, tx *sql.Tx, it Item, now string, isNew, uomChanged bool) error {
	barcodes := make([]childRow, len(it.Barcodes))
	for i, b := range it.Barcodes {
		barcodes[i] = childRow{key: b.Barcode, vals: []any{null(b.Type), null(b.UOM)}}
	}
	if err := syncChildren(ctx, tx, barcodeSpec, it.Code, barcodes, now, false); err != nil {
		return err
	}

	var uoms []childRow
	if !uomChanged {
		for _, u := range it.UOMs {
			uoms = append(uoms, childRow{key: u.UOM, vals: []any{u.Factor}})
		}
	}
	if !hasKey(uoms, it.StockUOM) {
		uoms = append(uoms, childRow{key: it.StockUOM, vals: []any{"1"}})
	}
	if err := syncChildren(ctx, tx, uomSpec, it.Code, uoms, now, uomChanged); err != nil {
		return err
	}

	var attrs []childRow
	newVariant := isNew && it.VariantOf != ""
	for _, a := range it.Attributes {
		if newVariant && strings.TrimSpace(a.Value) == "" {
			continue // validate_variant_attributes: "remove attributes with no attribute_value set"
		}
		variantOf := any(nil)
		if newVariant {
			variantOf = it.VariantOf
		}
		attrs = append(attrs, childRow{key: a.Attribute, vals: []any{null(a.Value)}, insertVals: []any{variantOf}})
	}
	return syncChildren(ctx, tx, attributeSpec, it.Code, attrs, now, false)
}

func hasKey(rows []childRow, key string) bool {
	for _, r := range rows {
		if r.key == key {
			return true
		}
	}
	return false
}

// syncChildren makes rows the spec's child rows of the Item parent, saved at now. With replaceAll every
// stored row is deleted and all rows are inserted anew (the table was emptied in the document).
func syncChildren(ctx context.Context, tx *sql.Tx, spec childSpec, parent string, rows []childRow, now string, replaceAll bool) error {
	existing := map[string]string{} // key → row name
	var stale []string
	err := eachRow(ctx, tx, "SELECT `name`, `"+spec.key+"` FROM `"+spec.table+"` "+
		"WHERE `parent` = ? AND `parenttype` = 'Item' AND `parentfield` = ? ORDER BY `idx`, `name`", []any{parent, spec.field},
		func(name string, key sql.NullString) {
			if _, dup := existing[key.String]; dup || replaceAll {
				stale = append(stale, name)
				return
			}
			existing[key.String] = name
		})
	if err != nil {
		return fmt.Errorf("erpnext: item %s: reading %s: %w", parent, spec.field, err)
	}
	wanted := map[string]bool{}
	for _, r := range rows {
		wanted[r.key] = true
	}
	for key, name := range existing {
		if !wanted[key] {
			stale = append(stale, name)
		}
	}
	for _, name := range stale { // before the inserts: a key may be UNIQUE (barcode)
		if _, err := tx.ExecContext(ctx, "DELETE FROM `"+spec.table+"` WHERE `name` = ?", name); err != nil {
			return fmt.Errorf("erpnext: item %s: deleting a row of %s: %w", parent, spec.field, err)
		}
	}
	for i, r := range rows {
		if name, ok := existing[r.key]; ok {
			args := append([]any{now, adminUser, i + 1}, r.vals...)
			if _, err := tx.ExecContext(ctx, "UPDATE `"+spec.table+"` SET `modified` = ?, `modified_by` = ?, `idx` = ?"+
				assignments(spec.cols)+" WHERE `name` = ?", append(args, name)...); err != nil {
				return fmt.Errorf("erpnext: item %s: %s %s: %w", parent, spec.field, r.key, err)
			}
			continue
		}
		cols := append(append([]string{spec.key}, spec.cols...), spec.insertCols...)
		vals := append(append([]any{r.key}, r.vals...), r.insertVals...)
		q := "INSERT INTO `" + spec.table + "` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, " +
			"`" + strings.Join(cols, "`, `") + "`, `parent`, `parentfield`, `parenttype`) " +
			"SELECT ?, `creation`, ?, ?, `owner`, 0, ?, " + strings.Repeat("?, ", len(cols)) + "`name`, ?, 'Item' FROM `tabItem` WHERE `name` = ?"
		args := append(append([]any{now, adminUser, i + 1}, vals...), spec.field, parent)
		if err := insertHashNamed(ctx, tx, q, args...); err != nil {
			return fmt.Errorf("erpnext: item %s: %s %s: %w", parent, spec.field, r.key, err)
		}
	}
	return nil
}

// assignments renders ", `a` = ?, `b` = ?" for cols.
func assignments(cols []string) string {
	var b strings.Builder
	for _, c := range cols {
		b.WriteString(", `" + c + "` = ?")
	}
	return b.String()
}

// eachRow runs q and calls fn with the two string columns of every row.
func eachRow(ctx context.Context, tx *sql.Tx, q string, args []any, fn func(string, sql.NullString)) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		var b sql.NullString
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		fn(a, b)
	}
	return rows.Err()
}
