package erpnext

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ReserveStock sets the Sales Order reservation of (code, warehouse) to reservedQty, as a Sales Order
// submit or cancel does through stock_balance.update_bin_qty(item, warehouse, {"reserved_qty": …})
// (FINDINGS §8.5): get_bin creates a missing Bin (creation = modified = site now, quantities 0); when the
// value differs, reserved_qty and projected_qty (actual + ordered + indented + planned − reserved −
// reserved for production, sub-contract and production plan; reserved_stock is not subtracted) are
// written with modified = site now; when it does not, nothing is written. reservedQty is the Bin's new
// total reserved quantity (get_reserved_qty over the open Sales Orders), decimal text.
func (s *Site) ReserveStock(ctx context.Context, code, warehouse, reservedQty string) error {
	if warehouse == "" {
		return fmt.Errorf("erpnext: reserving %s: warehouse is mandatory", code)
	}
	if err := checkDecimal("reserved_qty", reservedQty); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		name, reserved, err := s.getBin(ctx, tx, code, warehouse)
		if err != nil {
			return err
		}
		if decimalCmp(reserved, reservedQty) == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, "UPDATE `tabBin` SET `modified` = ?, `modified_by` = ?, `reserved_qty` = ?, "+
			"`projected_qty` = `actual_qty` + `ordered_qty` + `indented_qty` + `planned_qty` - ? - `reserved_qty_for_production` "+
			"- `reserved_qty_for_sub_contract` - `reserved_qty_for_production_plan` WHERE `name` = ?",
			s.now(), adminUser, reservedQty, reservedQty, name)
		if err != nil {
			return fmt.Errorf("erpnext: reserving %s in %s: %w", code, warehouse, err)
		}
		return nil
	})
}

// getBin is erpnext.stock.utils.get_bin: the Bin of (code, warehouse), locked, inserted when missing. It
// returns its name and reserved_qty.
func (s *Site) getBin(ctx context.Context, tx *sql.Tx, code, warehouse string) (name, reserved string, err error) {
	err = tx.QueryRowContext(ctx, "SELECT `name`, `reserved_qty` FROM `tabBin` WHERE `item_code` = ? AND `warehouse` = ? FOR UPDATE", code, warehouse).
		Scan(&name, &reserved)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return name, reserved, err
	}
	if err := exists(ctx, tx, "SELECT 1 FROM `tabItem` WHERE `name` = ? LOCK IN SHARE MODE", code); err != nil {
		return "", "", fmt.Errorf("erpnext: Bin of %s in %s: item %w", code, warehouse, err)
	}
	now := s.now()
	if err := insertHashNamed(ctx, tx, "INSERT INTO `tabBin` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
		"`item_code`, `warehouse`, `stock_uom`) SELECT ?, ?, ?, ?, ?, 0, 0, `name`, ?, `stock_uom` FROM `tabItem` WHERE `name` = ?",
		now, now, adminUser, adminUser, warehouse, code); err != nil {
		return "", "", fmt.Errorf("erpnext: Bin of %s in %s: %w", code, warehouse, err)
	}
	err = tx.QueryRowContext(ctx, "SELECT `name`, `reserved_qty` FROM `tabBin` WHERE `item_code` = ? AND `warehouse` = ?", code, warehouse).
		Scan(&name, &reserved)
	return name, reserved, err
}
