package site_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
)

// The storefront shows what ERPNext would sell: changes that ERPNext writes
// without moving the Item's `modified` reach the receiver within the normal
// detection latency (poll_interval is 50ms here; the reconciliation sweep
// never runs in these tests: reconcile_interval is 6h).

// TestRenameArrivesAsDeleteAndUpsert: rename_doc's statements (FINDINGS §8.1),
// in one transaction: the old code arrives deleted with reason "renamed" and
// renamed_to, the new code upserted with the old item's prices.
func TestRenameArrivesAsDeleteAndUpsert(t *testing.T) {
	const n = 10
	e := sitetest.New(t, sitetest.Options{Items: n, SeedAge: time.Hour})
	e.Start()
	e.WaitCount(n)
	renameItem(t, e, "ITEM-00004", "LAMP-4")
	e.Wait(t, "the rename", func(items map[string]receiver.Entry) bool {
		old, nu := items["ITEM-00004"], items["LAMP-4"]
		return old.Op == "delete" && old.Item["reason"] == "renamed" && old.Item["renamed_to"] == "LAMP-4" &&
			nu.Op == "upsert" && sitetest.Price(nu, "Standard Selling") != nil
	})
	e.Stop()
	e.AssertMatchesDatabase()
	e.AssertNoRejections()
}

// renameItem runs rename_doc's statements for an Item (FINDINGS §8.1), the
// way a background job commits them: one transaction.
func renameItem(t *testing.T, e *sitetest.Env, old, new string) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.DB.BeginTx(ctx, nil)
	must(t, err)
	defer tx.Rollback()
	now := e.Site.Format(time.Now())
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"UPDATE `tabItem` SET name = ? WHERE name = ?", []any{new, old}},
		{"UPDATE `tabItem` SET item_code = ? WHERE name = ?", []any{new, new}},
		{"UPDATE `tabItem Barcode` SET parent = ? WHERE parent = ? AND parenttype = 'Item'", []any{new, old}},
		{"UPDATE `tabItem Price` SET item_code = ? WHERE item_code = ?", []any{new, old}},
		{"UPDATE `tabBin` SET item_code = ? WHERE item_code = ?", []any{new, old}},
		{"UPDATE `tabItem` SET item_code = ?, modified = ? WHERE name = ?", []any{new, now, new}}, // after_rename
		{"INSERT INTO `tabComment` (name, creation, modified, modified_by, owner, comment_type, comment_email, reference_doctype, reference_name, content) " +
			"VALUES (?, ?, ?, 'Administrator', 'Administrator', 'Edit', 'Administrator', 'Item', ?, ?)",
			[]any{"c" + new, now, now, new, "renamed from <strong>" + old + "</strong> to <strong>" + new + "</strong>"}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	must(t, tx.Commit())
}

// TestRowsStampedInTheServersZone: a Price List save rewrites its Item Price
// rows with SQL NOW(), in the database server's zone (UTC here), 5h30 behind
// the site's (Asia/Kolkata): the rows still arrive, and a list that stops
// being a selling list leaves every item's prices.
func TestRowsStampedInTheServersZone(t *testing.T) {
	const n = 10
	e := sitetest.New(t, sitetest.Options{Items: n, SeedAge: time.Hour})
	e.Start()
	e.WaitCount(n)
	var zone string
	must(t, e.DB.QueryRow("SELECT @@system_time_zone").Scan(&zone))
	e.Exec("UPDATE `tabItem Price` SET price_list_rate = 777, modified = NOW() WHERE item_code = 'ITEM-00002' AND price_list = 'Standard Selling'")
	e.Wait(t, "a row stamped by NOW() (server zone "+zone+")", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00002"], "Standard Selling") == json.Number("777")
	})
	// Price List save: the ORM stamps the list in site time, then the raw
	// update of its rows with NOW().
	e.Exec("UPDATE `tabPrice List` SET selling = 0, buying = 1, modified = ? WHERE name = 'Wholesale'", e.Site.Format(time.Now()))
	e.Exec("UPDATE `tabItem Price` SET currency = 'KES', buying = 1, selling = 0, modified = NOW() WHERE price_list = 'Wholesale'")
	e.Wait(t, "Wholesale prices gone from every item", func(items map[string]receiver.Entry) bool {
		for _, it := range items {
			if sitetest.Price(it, "Wholesale") != nil {
				return false
			}
		}
		return true
	})
	e.Stop()
	e.AssertMatchesDatabase()
	e.AssertNoRejections()
}

// TestItemPriceMovedToAnotherItem: an Item Price whose item_code is edited
// (a desk save: modified moves, a Version row records the old value) leaves
// one item and joins another; both are sent again.
func TestItemPriceMovedToAnotherItem(t *testing.T) {
	const n = 10
	e := sitetest.New(t, sitetest.Options{Items: n, SeedAge: time.Hour})
	e.Start()
	e.WaitCount(n)
	var row string
	must(t, e.DB.QueryRow("SELECT name FROM `tabItem Price` WHERE item_code = 'ITEM-00005' AND price_list = 'Standard Selling'").Scan(&row))
	e.Exec("DELETE FROM `tabItem Price` WHERE item_code = 'ITEM-00006' AND price_list = 'Standard Selling'") // raw: ITEM-00006 keeps its old price at the receiver until it is sent again
	now := e.Site.Format(time.Now())
	e.Exec("UPDATE `tabItem Price` SET item_code = 'ITEM-00006', price_list_rate = 606, modified = ? WHERE name = ?", now, row)
	e.Exec("INSERT INTO `tabVersion` (name, creation, modified, modified_by, owner, ref_doctype, docname, data) VALUES ('v1', ?, ?, 'Administrator', 'Administrator', 'Item Price', ?, ?)",
		now, now, row, `{"added": [], "changed": [["item_code", "ITEM-00005", "ITEM-00006"], ["price_list_rate", 1.0, 606.0]], "removed": [], "row_changed": [], "data_import": null, "updater_reference": null}`)
	e.Wait(t, "both items", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00005"], "Standard Selling") == nil &&
			sitetest.Price(items["ITEM-00006"], "Standard Selling") == json.Number("606")
	})
	e.Stop()
	e.AssertMatchesDatabase()
	e.AssertNoRejections()
}

// TestSelectionOnReload: narrowing the selection sends the items that leave
// it as deletes with reason "deselected"; widening it again sends them whole.
func TestSelectionOnReload(t *testing.T) {
	const n = 20
	e := sitetest.New(t, sitetest.Options{Items: n, SeedAge: time.Hour})
	e.Start()
	e.WaitCount(n)
	var group string
	must(t, e.DB.QueryRow("SELECT item_group FROM tabItem WHERE name = 'ITEM-00001'").Scan(&group))
	var inGroup int
	must(t, e.DB.QueryRow("SELECT COUNT(*) FROM tabItem WHERE item_group = ?", group).Scan(&inGroup))
	e.Exec("INSERT INTO `tabItem Group` (name, item_group_name, is_group, lft, rgt) VALUES (?, ?, 0, 1, 2)", group, group)
	e.RewriteSettings(t, `site_url = "https://erp.example.com"`, "site_url = \"https://erp.example.com\"\nitem_groups = ["+jsonString(group)+"]")
	must(t, e.Reload())
	e.Wait(t, "the items of other groups deselected", func(items map[string]receiver.Entry) bool {
		deselected := 0
		for _, it := range items {
			if it.Op == "delete" && it.Item["reason"] == "deselected" {
				deselected++
			}
		}
		return deselected == n-inGroup && items["ITEM-00001"].Op == "upsert"
	})
	e.RewriteSettings(t, "\nitem_groups = ["+jsonString(group)+"]", "")
	must(t, e.Reload())
	e.Wait(t, "every item back", func(items map[string]receiver.Entry) bool {
		for _, it := range items {
			if it.Op != "upsert" {
				return false
			}
		}
		return len(items) == n
	})
	e.Stop()
	e.AssertMatchesDatabase()
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestRenamedGroupDoesNotEmptyTheShop: erp.item_groups names a group that
// ERPNext then renames (tabItem.item_group rewritten without `modified`, an
// Edit Comment). Its items now look deselected; they are held back with a
// WARN instead of being deleted from the shop, and the settings' error names
// the new name. Once the settings name it, nothing was lost.
func TestRenamedGroupDoesNotEmptyTheShop(t *testing.T) {
	const n = 20
	e := sitetest.New(t, sitetest.Options{Items: n, SeedAge: time.Hour, ERP: `item_groups = ["Lamps"]`})
	e.Exec("INSERT INTO `tabItem Group` (name, item_group_name, is_group, lft, rgt) VALUES ('Lamps', 'Lamps', 0, 1, 2)")
	e.Exec("UPDATE `tabItem` SET item_group = 'Lamps' WHERE name IN ('ITEM-00001', 'ITEM-00002', 'ITEM-00003')")
	e.Start()
	e.WaitCount(3)
	now := e.Site.Format(time.Now())
	e.Exec("UPDATE `tabItem Group` SET name = 'Desk Lamps', item_group_name = 'Desk Lamps' WHERE name = 'Lamps'")
	e.Exec("UPDATE `tabItem` SET item_group = 'Desk Lamps' WHERE item_group = 'Lamps'")
	e.Exec("INSERT INTO `tabComment` (name, creation, modified, modified_by, owner, comment_type, comment_email, reference_doctype, reference_name, content) "+
		"VALUES ('cg1', ?, ?, 'Administrator', 'Administrator', 'Edit', 'Administrator', 'Item Group', 'Desk Lamps', 'renamed from <strong>Lamps</strong> to <strong>Desk Lamps</strong>')", now, now)
	e.WaitLog(t, "holding back items the settings deselect")
	e.WaitLog(t, `ERPNext recorded its rename to \"Desk Lamps\"`)
	for code, it := range e.Rcv.Items(sitetest.Tenant) {
		if it.Op != "upsert" {
			t.Errorf("%s: %s (%v) while the settings name a renamed group", code, it.Op, it.Item["reason"])
		}
	}
	e.RewriteSettings(t, `item_groups = ["Lamps"]`, `item_groups = ["Desk Lamps"]`)
	must(t, e.Reload())
	e.Wait(t, "the items under the new group name", func(items map[string]receiver.Entry) bool {
		return items["ITEM-00001"].Item["item_group"] == "Desk Lamps"
	})
	e.Stop()
	for code, it := range e.Rcv.Items(sitetest.Tenant) {
		if it.Op != "upsert" {
			t.Errorf("%s: %s after the fix", code, it.Op)
		}
	}
}
