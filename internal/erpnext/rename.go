package erpnext

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// Item renames (FINDINGS §8.1, frappe.rename_doc with ERPNext's Item.before_rename/after_rename), all in
// one transaction:
//
//  1. before_rename: when item_name equals the old code, frappe.db.set_value sets it to the new code
//     (modified moves on the old row). A merge checks that stock_uom, is_stock_item, has_serial_no and
//     has_batch_no agree, and deletes the old item's Bins (raw).
//  2. validate_rename: a rename needs a free name, a merge an existing target.
//  3. rename only: name and item_code rewritten raw, the child rows' parent too.
//  4. Link fields pointing at the Item (Item Price, Bin, Item.variant_of, Item Variant Attribute.variant_of,
//     Website Item item_code/variant_of, Stock Ledger Entry) rewritten raw, `modified` untouched.
//  5. Dynamic links (Comment.reference_name, File.attached_to_name) and Version.docname rewritten raw.
//  6. after_rename: set_value item_code, so the new row's modified moves. A merge also re-saves
//     last_purchase_rate (modified again) and rebuilds the target's Bins (recalculate_bin_qty).
//  7. One 'Edit' Comment on the new name: "renamed from <strong>OLD</strong> to <strong>NEW</strong>"
//     or "merged <strong>OLD</strong> into <strong>NEW</strong>".
//  8. A merge then deletes the old Item with frappe.delete_doc (DeleteItem's path: its child rows, one
//     Deleted Document, a 'Deleted' Comment). A rename writes no Deleted Document.

// RenameItem renames the Item old to new as frappe.rename_doc("Item", old, new) does (steps above). The
// renamed row's `modified` moves (after_rename); the rows that follow it keep theirs. ErrNotFound when
// old does not exist; an error when new does.
func (s *Site) RenameItem(ctx context.Context, old, new string) error {
	return s.rename(ctx, old, new, false)
}

// MergeItem merges the Item old into the existing Item into as frappe.rename_doc("Item", old, into,
// merge=True) does (steps above). The target's Bins are deleted and inserted again (new names,
// creation = modified = site now) holding the sums of both items' quantities per warehouse: the state
// once the Repost Item Valuation that ERPNext queues for actual_qty has run.
func (s *Site) MergeItem(ctx context.Context, old, into string) error {
	return s.rename(ctx, old, into, true)
}

// RawRenameItem renames the Item old to new the way a script with raw SQL does (and what RenameItem did
// before it followed after_rename): steps 3-5 only, the name, item_code, child rows and every link and
// dynamic link rewritten without `modified`, no item_name change, no Comment, no Deleted Document. No
// `modified` poll can see it; only a reconciliation finds the old code gone and the new one there.
func (s *Site) RawRenameItem(ctx context.Context, old, new string) error {
	if new == "" || strings.TrimSpace(new) != new || new == old {
		return fmt.Errorf("erpnext: invalid new name %q for %s", new, old)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := lockItem(ctx, tx, old); err != nil {
			return fmt.Errorf("erpnext: renaming item %s: %w", old, err)
		}
		if err := checkFree(ctx, tx, old, new); err != nil {
			return err
		}
		if err := execAll(ctx, tx, renameStatements(old, new, false)); err != nil {
			return fmt.Errorf("erpnext: renaming %s to %s: %w", old, new, err)
		}
		return nil
	})
}

// itemProps are what rename reads of an Item; the last four must agree for a merge.
type itemProps struct {
	itemName                     sql.NullString
	stockUOM                     sql.NullString
	isStock, hasSerial, hasBatch int
	name, webItem                string
}

func (p itemProps) mergeKey() [4]string {
	return [4]string{p.stockUOM.String, fmt.Sprint(p.isStock), fmt.Sprint(p.hasSerial), fmt.Sprint(p.hasBatch)}
}

// lockItem reads the Item name FOR UPDATE, with the name of its Website Item ("" when none).
func lockItem(ctx context.Context, tx *sql.Tx, name string) (itemProps, error) {
	var p itemProps
	var web sql.NullString
	err := tx.QueryRowContext(ctx, "SELECT `name`, `item_name`, `stock_uom`, `is_stock_item`, `has_serial_no`, `has_batch_no`, "+
		"(SELECT MIN(w.`name`) FROM `tabWebsite Item` w WHERE w.`item_code` = i.`name`) FROM `tabItem` i WHERE `name` = ? FOR UPDATE", name).
		Scan(&p.name, &p.itemName, &p.stockUOM, &p.isStock, &p.hasSerial, &p.hasBatch, &web)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	p.webItem = web.String
	return p, err
}

func (s *Site) rename(ctx context.Context, old, new string, merge bool) error {
	if new == "" || strings.TrimSpace(new) != new || new == old {
		return fmt.Errorf("erpnext: invalid new name %q for %s", new, old)
	}
	verb := "renaming"
	if merge {
		verb = "merging"
	}
	var deleted []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		src, err := lockItem(ctx, tx, old)
		if err != nil {
			return fmt.Errorf("erpnext: %s item %s: %w", verb, old, err)
		}
		var oldBins []binQtys
		if merge {
			if oldBins, err = s.beforeMerge(ctx, tx, src, new); err != nil {
				return err
			}
		} else if err := checkFree(ctx, tx, old, new); err != nil {
			return err
		}
		if src.itemName.String == old { // Item.before_rename
			if _, err := tx.ExecContext(ctx, "UPDATE `tabItem` SET `item_name` = ?, `modified` = ?, `modified_by` = ? WHERE `name` = ?",
				new, s.now(), adminUser, old); err != nil {
				return fmt.Errorf("erpnext: %s %s: %w", verb, old, err)
			}
		}
		if merge { // delete_old_bins, after the item_name set_value as in before_rename
			if _, err := tx.ExecContext(ctx, "DELETE FROM `tabBin` WHERE `item_code` = ?", old); err != nil {
				return fmt.Errorf("erpnext: merging %s: deleting its Bins: %w", old, err)
			}
		}
		if err := execAll(ctx, tx, renameStatements(old, new, merge)); err != nil {
			return fmt.Errorf("erpnext: %s %s to %s: %w", verb, old, new, err)
		}
		if err := s.afterRename(ctx, tx, new, merge, oldBins); err != nil {
			return err
		}
		text := "renamed from " + bold(old) + " to " + bold(new)
		if merge {
			text = "merged " + bold(old) + " into " + bold(new)
		}
		if err := s.addComment(ctx, tx, comment{kind: "Edit", doctype: "Item", name: new, content: text}); err != nil {
			return err
		}
		if merge {
			deleted, err = s.deleteItem(ctx, tx, old, 0)
		}
		return err
	})
	if err != nil || len(deleted) == 0 {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return deleteDynamicLinks(ctx, tx, deleted) })
}

// checkFree is validate_rename for a plain rename: no other Item may hold the new name (the same Item
// under another letter case may).
func checkFree(ctx context.Context, tx *sql.Tx, old, new string) error {
	var found string
	err := tx.QueryRowContext(ctx, "SELECT `name` FROM `tabItem` WHERE `name` = ? FOR UPDATE", new).Scan(&found)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("erpnext: renaming %s: %w", old, err)
	case found != old:
		return fmt.Errorf("erpnext: renaming %s: another Item with name %s exists, select another name", old, new)
	}
	return nil
}

// beforeMerge runs the merge checks of Item.before_rename, validate_rename and webshop's before_rename,
// and returns the old item's Bins (which the merge deletes) for the target's recalculation.
func (s *Site) beforeMerge(ctx context.Context, tx *sql.Tx, src itemProps, into string) ([]binQtys, error) {
	dst, err := lockItem(ctx, tx, into)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("erpnext: merging %s: Item %s does not exist, select a new target to merge: %w", src.name, into, err)
	}
	if err != nil {
		return nil, fmt.Errorf("erpnext: merging %s: %w", src.name, err)
	}
	if src.mergeKey() != dst.mergeKey() {
		return nil, fmt.Errorf("erpnext: merging %s into %s: to merge, stock_uom, is_stock_item, has_serial_no and has_batch_no "+
			"must be the same for both items (%v, %v)", src.name, into, src.mergeKey(), dst.mergeKey())
	}
	if src.webItem != "" && dst.webItem != "" {
		return nil, fmt.Errorf("erpnext: merging %s into %s: both items have a Website Item (%s, %s)", src.name, into, src.webItem, dst.webItem)
	}
	return readBins(ctx, tx, src.name)
}

// renameStatements are steps 3-5: the rows and links moved raw, without `modified`.
func renameStatements(old, new string, merge bool) []stmt {
	var st []stmt
	if !merge { // rename_parent_and_child, update_autoname_field, update_child_docs
		st = append(st,
			stmt{"UPDATE `tabItem` SET `name` = ? WHERE `name` = ?", []any{new, old}},
			stmt{"UPDATE `tabItem` SET `item_code` = ? WHERE `name` = ?", []any{new, new}})
		for _, spec := range itemChildTables {
			st = append(st, stmt{"UPDATE `" + spec.table + "` SET `parent` = ? WHERE `parent` = ? AND `parenttype` = 'Item'", []any{new, old}})
		}
	}
	for _, link := range [][2]string{ // update_link_field_values
		{"tabItem Price", "item_code"}, {"tabBin", "item_code"}, {"tabItem", "variant_of"},
		{"tabItem Variant Attribute", "variant_of"}, {"tabWebsite Item", "item_code"}, {"tabWebsite Item", "variant_of"},
		{"tabStock Ledger Entry", "item_code"},
	} {
		st = append(st, stmt{"UPDATE `" + link[0] + "` SET `" + link[1] + "` = ? WHERE `" + link[1] + "` = ?", []any{new, old}})
	}
	return append(st, // rename_dynamic_links, update_attachments, rename_versions
		stmt{"UPDATE `tabComment` SET `reference_name` = ? WHERE `reference_doctype` = 'Item' AND `reference_name` = ?", []any{new, old}},
		stmt{"UPDATE `tabFile` SET `attached_to_name` = ? WHERE `attached_to_doctype` = 'Item' AND `attached_to_name` = ?", []any{new, old}},
		stmt{"UPDATE `tabVersion` SET `docname` = ? WHERE `ref_doctype` = 'Item' AND `docname` = ?", []any{new, old}})
}

// stmt is one SQL statement with its arguments.
type stmt struct {
	q    string
	args []any
}

func execAll(ctx context.Context, tx *sql.Tx, st []stmt) error {
	for _, s := range st {
		if _, err := tx.ExecContext(ctx, s.q, s.args...); err != nil {
			return err
		}
	}
	return nil
}

// afterRename is Item.after_rename: item_code set_value (modified moves); on a merge also
// set_last_purchase_rate (a set_value of last_purchase_rate, a column the schema lacks, so only modified
// is written) and recalculate_bin_qty.
func (s *Site) afterRename(ctx context.Context, tx *sql.Tx, new string, merge bool, oldBins []binQtys) error {
	if _, err := tx.ExecContext(ctx, "UPDATE `tabItem` SET `item_code` = ?, `modified` = ?, `modified_by` = ? WHERE `name` = ?",
		new, s.now(), adminUser, new); err != nil {
		return fmt.Errorf("erpnext: after renaming to %s: %w", new, err)
	}
	if !merge {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `tabItem` SET `modified` = ?, `modified_by` = ? WHERE `name` = ?", s.now(), adminUser, new); err != nil {
		return fmt.Errorf("erpnext: after merging into %s: %w", new, err)
	}
	return s.recalculateBins(ctx, tx, new, oldBins)
}

// binQtyCols are the tabBin quantity columns a merge sums.
var binQtyCols = []string{"actual_qty", "planned_qty", "indented_qty", "ordered_qty", "projected_qty", "reserved_qty",
	"reserved_qty_for_production", "reserved_qty_for_sub_contract", "reserved_qty_for_production_plan", "reserved_stock", "stock_value"}

// binQtys is a Bin's warehouse and binQtyCols.
type binQtys struct {
	warehouse string
	qty       []*big.Rat
}

func readBins(ctx context.Context, tx *sql.Tx, code string) ([]binQtys, error) {
	rows, err := tx.QueryContext(ctx, "SELECT `warehouse`, `"+strings.Join(binQtyCols, "`, `")+"` FROM `tabBin` WHERE `item_code` = ? FOR UPDATE", code)
	if err != nil {
		return nil, fmt.Errorf("erpnext: reading the Bins of %s: %w", code, err)
	}
	defer rows.Close()
	var out []binQtys
	for rows.Next() {
		var wh sql.NullString
		texts := make([]string, len(binQtyCols))
		dest := []any{&wh}
		for i := range texts {
			dest = append(dest, &texts[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("erpnext: reading the Bins of %s: %w", code, err)
		}
		b := binQtys{warehouse: wh.String}
		for _, t := range texts {
			r, _ := new(big.Rat).SetString(t)
			b.qty = append(b.qty, r)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// recalculateBins is recalculate_bin_qty on the merge target: its Bins are deleted and one Bin per
// warehouse inserted, holding the sums over the target's and the merged item's Bins.
func (s *Site) recalculateBins(ctx context.Context, tx *sql.Tx, code string, merged []binQtys) error {
	own, err := readBins(ctx, tx, code)
	if err != nil {
		return err
	}
	sums := map[string][]*big.Rat{}
	for _, b := range append(own, merged...) {
		sum, ok := sums[b.warehouse]
		if !ok {
			sum = make([]*big.Rat, len(binQtyCols))
			for i := range sum {
				sum[i] = new(big.Rat)
			}
			sums[b.warehouse] = sum
		}
		for i, q := range b.qty {
			sum[i].Add(sum[i], q)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM `tabBin` WHERE `item_code` = ?", code); err != nil {
		return fmt.Errorf("erpnext: merging into %s: deleting its Bins: %w", code, err)
	}
	warehouses := make([]string, 0, len(sums))
	for wh := range sums {
		warehouses = append(warehouses, wh)
	}
	slices.Sort(warehouses)
	q := "INSERT INTO `tabBin` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, `item_code`, `warehouse`, `stock_uom`, `" +
		strings.Join(binQtyCols, "`, `") + "`) SELECT ?, ?, ?, ?, ?, 0, 0, `name`, ?, `stock_uom`" + strings.Repeat(", ?", len(binQtyCols)) +
		" FROM `tabItem` WHERE `name` = ?"
	for _, wh := range warehouses {
		now := s.now()
		args := []any{now, now, adminUser, adminUser, wh}
		for _, r := range sums[wh] {
			args = append(args, r.FloatString(9))
		}
		if err := insertHashNamed(ctx, tx, q, append(args, code)...); err != nil {
			return fmt.Errorf("erpnext: merging into %s: Bin of %s: %w", code, wh, err)
		}
	}
	return nil
}
