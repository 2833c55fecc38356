package site_test

import (
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestSettingsNameARenamedPriceList: erp.price_lists names a list that ERPNext
// renamed. The daemon does not send empty prices silently: it logs an ERROR
// naming the key, the old and the new name and the fix, and
// erpsync_settings_problems counts it; a reload with the new name clears both.
func TestSettingsNameARenamedPriceList(t *testing.T) {
	e := sitetest.New(t, sitetest.Options{Items: 3, ERP: `price_lists = ["Retail"]`})
	now := e.Site.Format(time.Now())
	e.Exec("INSERT INTO `tabPrice List` (name, creation, modified, modified_by, owner, enabled, price_list_name, currency, buying, selling) " +
		"VALUES ('Retail KE', '2024-01-01', '2024-01-01', 'Administrator', 'Administrator', 1, 'Retail KE', 'KES', 0, 1)")
	e.Exec("INSERT INTO `tabComment` (name, creation, modified, modified_by, owner, comment_type, comment_email, reference_doctype, reference_name, content) "+
		"VALUES ('cmt1', ?, ?, 'Administrator', 'Administrator', 'Edit', 'Administrator', 'Price List', 'Retail KE', 'renamed from <strong>Retail</strong> to <strong>Retail KE</strong>')", now, now)
	e.Start()
	e.WaitCount(3)
	e.WaitLog(t, `level=ERROR msg="settings name what ERPNext does not have`)
	line := lastLineWith(e.Log(), "settings name what ERPNext does not have")
	for _, want := range []string{"erp.price_lists", `Retail`, `Retail KE`, e.CfgPath} {
		if !strings.Contains(line, want) {
			t.Errorf("the error line lacks %q:\n%s", want, line)
		}
	}
	if got := e.Metric(`erpsync_settings_problems{site="default"}`); got != "1" {
		t.Errorf("erpsync_settings_problems = %q, want 1", got)
	}
	e.RewriteSettings(t, `price_lists = ["Retail"]`, `price_lists = ["Retail KE"]`)
	must(t, e.Reload())
	e.WaitLog(t, "all exist and are enabled again")
	if got := e.Metric(`erpsync_settings_problems{site="default"}`); got != "0" {
		t.Errorf("after the fix erpsync_settings_problems = %q, want 0", got)
	}
	e.Stop()
}

func lastLineWith(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
