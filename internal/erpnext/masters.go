package erpnext

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// PriceList is a Price List master. Name is both name and price_list_name.
type PriceList struct {
	Name, Currency           string
	Enabled, Buying, Selling bool
}

// SavePriceList inserts or updates the Price List through the ORM (modified = site now, creation kept on
// an update), then runs PriceList.on_update → update_item_price, exactly:
//
//	update `tabItem Price` set currency=?, buying=?, selling=?, modified=NOW() where price_list=?
//
// so every Item Price of the list gets `modified` from the database session's clock and time zone, in
// whole seconds (FINDINGS §8.2), even when nothing changed.
func (s *Site) SavePriceList(ctx context.Context, pl PriceList) error {
	if pl.Name == "" || strings.TrimSpace(pl.Name) != pl.Name || pl.Currency == "" {
		return fmt.Errorf("erpnext: price list %q: Name and Currency are mandatory", pl.Name)
	}
	if !pl.Buying && !pl.Selling {
		return fmt.Errorf("erpnext: price list %s: Price List must be applicable for Buying or Selling", pl.Name)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		err := exists(ctx, tx, "SELECT 1 FROM `tabPrice List` WHERE `name` = ? FOR UPDATE", pl.Name)
		switch {
		case errors.Is(err, ErrNotFound):
			_, err = tx.ExecContext(ctx, "INSERT INTO `tabPrice List` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
				"`enabled`, `price_list_name`, `currency`, `buying`, `selling`) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?)",
				pl.Name, now, now, adminUser, adminUser, pl.Enabled, pl.Name, pl.Currency, pl.Buying, pl.Selling)
		case err == nil:
			_, err = tx.ExecContext(ctx, "UPDATE `tabPrice List` SET `modified` = ?, `modified_by` = ?, `enabled` = ?, `currency` = ?, "+
				"`buying` = ?, `selling` = ? WHERE `name` = ?", now, adminUser, pl.Enabled, pl.Currency, pl.Buying, pl.Selling, pl.Name)
		}
		if err != nil {
			return fmt.Errorf("erpnext: saving price list %s: %w", pl.Name, err)
		}
		if _, err := tx.ExecContext(ctx, "update `tabItem Price` set currency=?, buying=?, selling=?, modified=NOW() where price_list=?",
			pl.Currency, pl.Buying, pl.Selling, pl.Name); err != nil {
			return fmt.Errorf("erpnext: price list %s: updating its Item Prices: %w", pl.Name, err)
		}
		return nil
	})
}

// Warehouse is a node of the warehouse tree. Name is the warehouse's name ("Stores - AC": autoname
// appends " - <company abbr>" to warehouse_name, which SaveWarehouse takes as Name up to its last " - ").
// Parent "" makes a root; a parent must be a group.
type Warehouse struct {
	Name, Parent, Company string
	IsGroup               bool
}

// SaveWarehouse inserts or updates the Warehouse through the ORM (modified = site now) and then keeps the
// nested set as NestedSet.on_update → update_nsm does (F15.44 frappe/utils/nestedset.py, FINDINGS §8.7):
// a new node goes last under its parent, the lft/rgt of every row to its right shifted by 2 with raw
// UPDATEs; a node whose parent changed moves with its subtree (update_move_node); then old_parent is set
// with update_modified=False. Raw updates never touch `modified` of the other rows.
func (s *Site) SaveWarehouse(ctx context.Context, w Warehouse) error {
	if w.Name == "" || strings.TrimSpace(w.Name) != w.Name || w.Parent == w.Name {
		return fmt.Errorf("erpnext: invalid warehouse %q (parent %q)", w.Name, w.Parent)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if w.Parent != "" {
			var isGroup bool
			err := tx.QueryRowContext(ctx, "SELECT `is_group` FROM `tabWarehouse` WHERE `name` = ? FOR UPDATE", w.Parent).Scan(&isGroup)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("erpnext: warehouse %s: parent %s: %w", w.Name, w.Parent, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("erpnext: warehouse %s: %w", w.Name, err)
			}
			if !isGroup {
				return fmt.Errorf("erpnext: warehouse %s: parent warehouse %s is not a group", w.Name, w.Parent)
			}
		}
		node, err := s.writeWarehouse(ctx, tx, w)
		if err != nil {
			return err
		}
		if err := updateNSM(ctx, tx, node, w.Parent); err != nil {
			return fmt.Errorf("erpnext: warehouse %s: %w", w.Name, err)
		}
		return nil
	})
}

// nsmNode is a tree row as the document holds it before update_nsm: its name, lft, rgt and old_parent.
type nsmNode struct {
	name      string
	lft, rgt  int
	oldParent string
}

// writeWarehouse inserts (lft = rgt = 0) or updates the row, and returns the node as it was loaded.
func (s *Site) writeWarehouse(ctx context.Context, tx *sql.Tx, w Warehouse) (nsmNode, error) {
	node := nsmNode{name: w.Name}
	var oldParent sql.NullString
	err := tx.QueryRowContext(ctx, "SELECT `lft`, `rgt`, `old_parent` FROM `tabWarehouse` WHERE `name` = ? FOR UPDATE", w.Name).
		Scan(&node.lft, &node.rgt, &oldParent)
	node.oldParent = oldParent.String
	now := s.now()
	warehouseName := warehouseName(w.Name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, "INSERT INTO `tabWarehouse` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
			"`warehouse_name`, `is_group`, `parent_warehouse`, `company`) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)",
			w.Name, now, now, adminUser, adminUser, warehouseName, w.IsGroup, null(w.Parent), null(w.Company))
	case err == nil:
		if !w.IsGroup {
			// NestedSet.validate_ledger: a leaf cannot have children.
			if e := exists(ctx, tx, "SELECT 1 FROM `tabWarehouse` WHERE `parent_warehouse` = ? AND `docstatus` <> 2 LIMIT 1", w.Name); e == nil {
				return node, fmt.Errorf("erpnext: Warehouse %s cannot be a leaf node as it has children", w.Name)
			}
		}
		_, err = tx.ExecContext(ctx, "UPDATE `tabWarehouse` SET `modified` = ?, `modified_by` = ?, `warehouse_name` = ?, `is_group` = ?, "+
			"`parent_warehouse` = ?, `company` = ? WHERE `name` = ?", now, adminUser, warehouseName, w.IsGroup, null(w.Parent), null(w.Company), w.Name)
	}
	if err != nil {
		return node, fmt.Errorf("erpnext: saving warehouse %s: %w", w.Name, err)
	}
	return node, nil
}

// warehouseName is the warehouse_name of the Warehouse name: name up to its last " - " (the company
// abbreviation autoname appended).
func warehouseName(name string) string {
	if i := strings.LastIndex(name, " - "); i > 0 {
		return name[:i]
	}
	return name
}

// updateNSM is frappe.utils.nestedset.update_nsm for a Warehouse node whose parent is now parent.
func updateNSM(ctx context.Context, tx *sql.Tx, node nsmNode, parent string) error {
	var err error
	switch {
	case node.lft == 0 && node.rgt == 0:
		err = addNode(ctx, tx, node.name, parent)
	case node.oldParent != parent:
		err = moveNode(ctx, tx, node, parent)
	}
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "UPDATE `tabWarehouse` SET `old_parent` = ? WHERE `name` = ?", parent, node.name)
	return err
}

// addNode is update_add_node: the node goes last under parent (or after the last root).
func addNode(ctx context.Context, tx *sql.Tx, name, parent string) error {
	var right int
	var err error
	if parent != "" {
		err = tx.QueryRowContext(ctx, "SELECT `rgt` FROM `tabWarehouse` WHERE `name` = ? FOR UPDATE", parent).Scan(&right)
	} else {
		err = tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(`rgt`), 0) + 1 FROM `tabWarehouse` WHERE COALESCE(`parent_warehouse`, '') = ''").Scan(&right)
	}
	if err != nil {
		return fmt.Errorf("placing the node: %w", err)
	}
	right = max(right, 1)
	if err := execAll(ctx, tx, []stmt{
		{"UPDATE `tabWarehouse` SET `rgt` = `rgt` + 2 WHERE `rgt` >= ?", []any{right}},
		{"UPDATE `tabWarehouse` SET `lft` = `lft` + 2 WHERE `lft` >= ?", []any{right}},
	}); err != nil {
		return err
	}
	if err := exists(ctx, tx, "SELECT 1 FROM `tabWarehouse` WHERE `lft` = ? OR `rgt` = ? LIMIT 1", right, right+1); err == nil {
		return errors.New("nested set error: please contact the Administrator")
	}
	_, err = tx.ExecContext(ctx, "UPDATE `tabWarehouse` SET `lft` = ?, `rgt` = ? WHERE `name` = ?", right, right+1, name)
	return err
}

// moveNode is update_move_node: the subtree goes to the dark side (negative lft/rgt), the gap closes, room
// opens last under the new parent, and the subtree comes back there.
func moveNode(ctx context.Context, tx *sql.Tx, node nsmNode, parent string) error {
	parentBounds := func() (lft, rgt int, err error) {
		err = tx.QueryRowContext(ctx, "SELECT `lft`, `rgt` FROM `tabWarehouse` WHERE `name` = ? FOR UPDATE", parent).Scan(&lft, &rgt)
		return lft, rgt, err
	}
	if parent != "" {
		pl, pr, err := parentBounds()
		if err != nil {
			return err
		}
		if pl >= node.lft && pr <= node.rgt { // validate_loop
			return errors.New("Item cannot be added to its own descendants")
		}
	}
	diff := node.rgt - node.lft + 1
	if err := execAll(ctx, tx, []stmt{
		{"UPDATE `tabWarehouse` SET `lft` = -`lft`, `rgt` = -`rgt` WHERE `lft` >= ? AND `rgt` <= ?", []any{node.lft, node.rgt}},
		{"UPDATE `tabWarehouse` SET `lft` = `lft` - ?, `rgt` = `rgt` - ? WHERE `lft` > ?", []any{diff, diff, node.rgt}},
		{"UPDATE `tabWarehouse` SET `rgt` = `rgt` - ? WHERE `lft` < ? AND `rgt` > ?", []any{diff, node.lft, node.rgt}},
	}); err != nil {
		return err
	}
	var newDiff int
	if parent != "" {
		pl, pr, err := parentBounds()
		if err != nil {
			return err
		}
		if err := execAll(ctx, tx, []stmt{
			{"UPDATE `tabWarehouse` SET `rgt` = `rgt` + ? WHERE `name` = ?", []any{diff, parent}},
			{"UPDATE `tabWarehouse` SET `lft` = `lft` + ?, `rgt` = `rgt` + ? WHERE `lft` > ?", []any{diff, diff, pr}},
			{"UPDATE `tabWarehouse` SET `rgt` = `rgt` + ? WHERE `lft` < ? AND `rgt` > ?", []any{diff, pl, pr}},
		}); err != nil {
			return err
		}
		newDiff = pr - node.lft
	} else {
		var maxRgt int
		if err := tx.QueryRowContext(ctx, "SELECT MAX(`rgt`) FROM `tabWarehouse`").Scan(&maxRgt); err != nil {
			return err
		}
		newDiff = maxRgt + 1 - node.lft
	}
	_, err := tx.ExecContext(ctx, "UPDATE `tabWarehouse` SET `lft` = -`lft` + ?, `rgt` = -`rgt` + ? WHERE `lft` < 0", newDiff, newDiff)
	return err
}
