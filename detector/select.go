package detector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Which items are sent (erp.item_groups, erp.brands, erp.sales_items_only,
// erp.sync_field; Selection). An item whose tabItem row exists but is not
// selected comes back from Build as a delete with ReasonDeselected: the
// caller sends it only to an item it sent before. The decision is taken on
// the tabItem row alone, before anything of the item is built: a deselected
// item has no members, no child rows are read for it, and a value that would
// make it a Problem does not matter (it is not sent).
//
// The selection is one expression of readItems' query, evaluated by the
// database on the row it reads: no query more, and every comparison is the
// database's own (a brand or group named "retail" selects "Retail", as the
// Link columns match under utf8mb4_unicode_ci). Item groups are read from
// the tree (tabItem Group lft/rgt) at every page: a group moved under a
// selected one changes lft/rgt and no `modified`, so nothing is cached.
// Items do not change when the tree does, though: such an item enters or
// leaves the selection at its next change or at the next reconciliation
// sweep.

// selectsAll reports whether s selects every item (the item keys are empty).
func (s *Selection) selectsAll() bool {
	return len(s.ItemGroups) == 0 && len(s.Brands) == 0 && !s.SalesItemsOnly && s.SyncField == ""
}

// itemFilter is the SQL expression, over a tabItem row, that is 1 when the
// row is selected and 0 when not, and its arguments; "" when every item is.
// NULL in a compared column (an item with no brand) does not select.
func (s *Selection) itemFilter() (string, []any) {
	if s.selectsAll() {
		return "", nil
	}
	var conds []string
	var args []any
	if n := len(s.ItemGroups); n > 0 {
		// The named groups and their descendants (strictly inside their
		// lft/rgt, as Frappe's get_descendants_of): a row whose tree was
		// never built (lft = rgt = 0) selects no other group.
		conds = append(conds, "(`item_group` IN ("+placeholders(n)+") OR `item_group` IN (SELECT g.name FROM `tabItem Group` s "+
			"JOIN `tabItem Group` g ON g.lft > s.lft AND g.rgt < s.rgt WHERE s.name IN ("+placeholders(n)+")))")
		groups := anySlice(s.ItemGroups)
		args = append(append(args, groups...), groups...)
	}
	if n := len(s.Brands); n > 0 {
		conds = append(conds, "`brand` IN ("+placeholders(n)+")")
		args = append(args, anySlice(s.Brands)...)
	}
	if s.SalesItemsOnly {
		conds = append(conds, "`is_sales_item` <> 0")
	}
	if s.SyncField != "" {
		conds = append(conds, quoteIdent(s.SyncField)+" <> 0")
	}
	return "CASE WHEN " + strings.Join(conds, " AND ") + " THEN 1 ELSE 0 END", args
}

// quoteIdent quotes a column name for MariaDB.
func quoteIdent(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// addDeselected adds the tabItem row named code as the next item of the page,
// not selected: it is sent as a delete and has no members.
func (p *page) addDeselected(code string) {
	if _, dup := p.index[code]; dup {
		return
	}
	p.index[code] = len(p.items)
	p.items = append(p.items, itemAt{first: len(p.members), last: len(p.members), deselected: true})
	p.codes = append(p.codes, code)
}

// selectedNames are the names of the page's selected items, those whose
// child rows are read: p.codes itself when no item is deselected.
func (p *page) selectedNames() []string {
	n := 0
	for i := range p.items {
		if !p.items[i].deselected {
			n++
		}
	}
	if n == len(p.codes) {
		return p.codes
	}
	names := make([]string, 0, n)
	for i := range p.items {
		if !p.items[i].deselected {
			names = append(names, p.codes[i])
		}
	}
	return names
}

// CheckSelection is CheckSelection on the Detector's database. New should
// check its Config's Selection with it; call it with the new Selection before
// SetFilters on a settings reload, and keep the running one when it fails.
func (d *Detector) CheckSelection(ctx context.Context, sel Selection) error {
	return checkSelection(ctx, d.db, sel)
}

// CheckSelection checks that the database db can select items as sel says:
// erp.sync_field names a Check column of tabItem (int(1) on ERPNext v15,
// tinyint on v16), and tabItem Group has its tree (lft, rgt) when
// erp.item_groups is set. What is wrong is a *SiteError that names the key,
// the value and the fix.
func CheckSelection(ctx context.Context, db *sql.DB, sel Selection) error {
	sdb, err := newSiteDB(ctx, db, "")
	if err != nil {
		return err
	}
	return checkSelection(ctx, sdb, sel)
}

func checkSelection(ctx context.Context, db *siteDB, sel Selection) error {
	if sel.SyncField == "" && len(sel.ItemGroups) == 0 {
		return nil
	}
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?
		AND ((TABLE_NAME = 'tabItem' AND COLUMN_NAME = ?) OR (TABLE_NAME = 'tabItem Group' AND COLUMN_NAME IN ('name', 'lft', 'rgt')))`,
		db.schema, sel.SyncField)
	if err != nil {
		return fmt.Errorf("read the columns of tabItem and tabItem Group: %w", err)
	}
	defer rows.Close()
	var syncType, syncColumnType string
	groupCols := 0
	for rows.Next() {
		var table, col, dataType, colType string
		if err := rows.Scan(&table, &col, &dataType, &colType); err != nil {
			return fmt.Errorf("read the columns of tabItem and tabItem Group: %w", err)
		}
		if table == "tabItem" {
			syncType, syncColumnType = strings.ToLower(dataType), strings.ToLower(colType)
		} else {
			groupCols++
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the columns of tabItem and tabItem Group: %w", err)
	}
	if sel.SyncField != "" {
		if err := checkSyncField(sel.SyncField, syncType, syncColumnType); err != nil {
			return err
		}
	}
	if len(sel.ItemGroups) > 0 && groupCols < 3 {
		return siteErrorf("erp.item_groups is set but the database has no item group tree (`tabItem Group` with name, lft and rgt): " +
			"point erp.dsn at the ERPNext site's database, or empty erp.item_groups")
	}
	return nil
}

// checkSyncField says what is wrong with erp.sync_field = field, whose
// tabItem column has the given types ("" when there is no such column).
func checkSyncField(field, dataType, columnType string) error {
	switch {
	case dataType == "":
		return siteErrorf("erp.sync_field = %q: tabItem has no column %q: add a Check field of that name to Item "+
			"(Customize Form, or a Custom Field), or write the field's name (such as sync_to_shop, not its label) in erp.sync_field", field, field)
	case dataType == "tinyint" || columnType == "int(1)":
		return nil
	default:
		return siteErrorf("erp.sync_field = %q: tabItem.%s is %s, not a Check (int(1), or tinyint on ERPNext v16): "+
			"name a Check field in erp.sync_field", field, field, columnType)
	}
}

// selectionError turns the error of readItems' query into a *SiteError when
// it is about the column erp.sync_field names (dropped or renamed since
// CheckSelection): retrying does not help, the settings or the site must
// change.
func (s *Selection) selectionError(err error) error {
	var me *mysql.MySQLError
	if s.SyncField != "" && errors.As(err, &me) && me.Number == 1054 && strings.Contains(me.Message, s.SyncField) {
		return &SiteError{msg: fmt.Sprintf("erp.sync_field = %q: tabItem has no such column any more (%s): "+
			"add the Check field back to Item, or change or empty erp.sync_field", s.SyncField, me.Message)}
	}
	return err
}
