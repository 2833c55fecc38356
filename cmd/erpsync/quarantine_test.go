package main

import (
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestQuarantineShows: an item that cannot be built shows in `erpsync
// status` and `erpsync outbox list`, naming the item and the column.
func TestQuarantineShows(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	const n = 3
	e := sitetest.New(t, sitetest.Options{Items: n})
	e.Start()
	e.WaitCount(n)
	bad := "BAD-\xed\xa0\x80-2"
	e.Exec("INSERT INTO `tabItem` (name, item_code, item_name, item_group, stock_uom, creation, modified, modified_by, owner) "+
		"SELECT ?, ?, item_name, item_group, stock_uom, creation, ?, modified_by, owner FROM `tabItem` WHERE name = 'ITEM-00001'", bad, bad, e.Site.Format(time.Now()))
	e.WaitLog(t, "item quarantined")
	code, out, errOut := runBinary(t, "status", "--config", e.CfgPath)
	if code != 0 || !strings.Contains(out, "quarantined") || !strings.Contains(out, "tabItem.name") {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runBinary(t, "outbox", "list", "--config", e.CfgPath)
	if code != 0 || !strings.Contains(out, "1 item(s) quarantined") {
		t.Errorf("outbox list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runBinary(t, "outbox", "list", "--state", "quarantined", "--config", e.CfgPath)
	if code != 0 || !strings.Contains(out, `"BAD-\xed\xa0\x80-2"`) || !strings.Contains(out, "tabItem.name") {
		t.Errorf("outbox list --state quarantined: exit %d\n%s%s", code, out, errOut)
	}
	e.Stop()
}
