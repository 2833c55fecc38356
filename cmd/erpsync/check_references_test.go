package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestCheckReferencesBinary runs `erpsync check` with settings that name a
// price list ERPNext renamed, a disabled warehouse, a group that does not
// exist, a Check field that is not there, and a price list that is not for
// selling (a warning alone).
func TestCheckReferencesBinary(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	tests := []struct {
		name     string
		erp      string // lines of [erp]
		wantCode int
		want     []string // substrings of the output; <CFG> is the settings file
		status   map[string]string
	}{
		{
			name:     "names that exist",
			erp:      `price_lists = ["Standard Selling", "Retail KE"]` + "\n" + `warehouses = ["Stores - AC"]`,
			wantCode: 0,
			want:     []string{"every price list, warehouse, item group and brand the settings name exists"},
			status:   map[string]string{"references": "ok", "tables": "ok"},
		},
		{
			name:     "renamed price list",
			erp:      `price_lists = ["Standard Selling", "Retail"]`,
			wantCode: 1,
			want: []string{
				`erp.price_lists names "Retail", which does not exist; ERPNext recorded its rename to "Retail KE"`,
				`fix: write "Retail KE" instead of "Retail" in erp.price_lists of <CFG>`,
			},
			status: map[string]string{"references": "fail", "tables": "ok"},
		},
		{
			name:     "disabled warehouse, missing group",
			erp:      `warehouses = ["Old Store - AC"]` + "\n" + `item_groups = ["Lamps"]`,
			wantCode: 1,
			want: []string{
				`erp.warehouses names "Old Store - AC", a Warehouse that is disabled in ERPNext`,
				`enable Warehouse "Old Store - AC" in ERPNext, or remove it from erp.warehouses of <CFG>`,
				`erp.item_groups names "Lamps", which does not exist: no Item Group has that name`,
			},
			status: map[string]string{"references": "fail", "tables": "ok"},
		},
		{
			name:     "sync field that is not there",
			erp:      `sync_field = "sync_to_shop"`,
			wantCode: 1,
			want:     []string{`erp.sync_field = "sync_to_shop": tabItem has no column "sync_to_shop"`, "fix: edit <CFG>"},
			status:   map[string]string{"selection": "fail", "tables": "ok", "references": "ok"},
		},
		{
			name:     "price list not for selling: a warning",
			erp:      `price_lists = ["Standard Buying"]`,
			wantCode: 0,
			want:     []string{`erp.price_lists names "Standard Buying", a Price List that is not for selling`},
			status:   map[string]string{"references": "warn"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sitetest.New(t, sitetest.Options{Items: 2, ERP: tt.erp})
			// Retail renamed to Retail KE as frappe.rename_doc does it (the
			// row rewritten raw, an Edit Comment on the new name), and a
			// disabled warehouse.
			e.Exec("INSERT INTO `tabPrice List` (name, creation, modified, modified_by, owner, enabled, price_list_name, currency, buying, selling) " +
				"VALUES ('Retail KE', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 'Administrator', 'Administrator', 1, 'Retail KE', 'KES', 0, 1)")
			e.Exec("INSERT INTO `tabComment` (name, creation, modified, modified_by, owner, comment_type, comment_email, reference_doctype, reference_name, content) " +
				"VALUES ('c0ffee0001', '2024-02-01 10:00:00.000001', '2024-02-01 10:00:00.000001', 'Administrator', 'Administrator', 'Edit', 'admin@example.com', " +
				"'Price List', 'Retail KE', 'renamed from <strong>Retail</strong> to <strong>Retail KE</strong>')")
			// The seed makes Stores - AC.
			e.Exec("INSERT INTO `tabWarehouse` (name, creation, modified, modified_by, owner, disabled, warehouse_name, company) VALUES " +
				"('Old Store - AC', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 'Administrator', 'Administrator', 1, 'Old Store', 'Acme')")
			code, out, errOut := runBinary(t, "check", "--config", e.CfgPath)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "<CFG>", e.CfgPath)
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			code, js, _ := runBinary(t, "check", "--config", e.CfgPath, "--json")
			if code != tt.wantCode {
				t.Errorf("--json: exit %d, want %d", code, tt.wantCode)
			}
			var report struct {
				Results []checkResult `json:"results"`
			}
			must(t, json.Unmarshal([]byte(js), &report))
			worst := map[string]string{}
			rank := map[string]int{"ok": 0, "warn": 1, "fail": 2}
			for _, r := range report.Results {
				if s, ok := worst[r.Check]; !ok || rank[r.Status] > rank[s] {
					worst[r.Check] = r.Status
				}
				if (r.Check == "references" || r.Check == "selection") && r.Status != "ok" && !strings.Contains(r.Fix, e.CfgPath) {
					t.Errorf("%s %s: the fix does not name the settings file: %+v", r.Status, r.Check, r)
				}
			}
			for check, want := range tt.status {
				if worst[check] != want {
					t.Errorf("check %s is %q, want %q\n%s", check, worst[check], want, out)
				}
			}
		})
	}
}
