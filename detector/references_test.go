package detector_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/detector"
)

// renameDoc renames a document as frappe.rename_doc does for a doctype with
// no rename hooks (Price List, Item Group; FINDINGS §8.1, §8.2): the name and
// its autoname field are rewritten raw (no modified), Link columns follow
// with update_modified=False, rename_dynamic_links moves the document's
// comments to the new name, and one Edit Comment is added with content
// (sanitize_html'd: the names HTML-escaped in <strong>).
func (f *fixture) renameDoc(t *testing.T, doctype, nameField, old, new, content string) {
	t.Helper()
	ctx := context.Background()
	table := "`tab" + doctype + "`"
	stmts := []struct {
		q    string
		args []any
	}{
		{"UPDATE " + table + " SET name = ? WHERE name = ?", []any{new, old}},
		{"UPDATE " + table + " SET `" + nameField + "` = ? WHERE name = ?", []any{new, new}},
		{"UPDATE `tabComment` SET reference_name = ? WHERE reference_doctype = ? AND reference_name = ?", []any{new, doctype, old}},
	}
	switch doctype {
	case "Price List":
		stmts = append(stmts, struct {
			q    string
			args []any
		}{"UPDATE `tabItem Price` SET price_list = ? WHERE price_list = ?", []any{new, old}})
	case "Item Group":
		stmts = append(stmts, struct {
			q    string
			args []any
		}{"UPDATE `tabItem` SET item_group = ? WHERE item_group = ?", []any{new, old}})
	}
	for _, s := range stmts {
		if _, err := f.db.ExecContext(ctx, s.q, s.args...); err != nil {
			t.Fatalf("%s: %v", s.q, err)
		}
	}
	f.addComment(t, "Edit", doctype, new, content)
}

// addComment inserts a Comment as Document.add_comment does.
func (f *fixture) addComment(t *testing.T, typ, doctype, name, content string) {
	t.Helper()
	var b [5]byte
	rand.Read(b[:])
	now := f.site.Format(f.site.Now())
	if _, err := f.db.ExecContext(context.Background(), "INSERT INTO `tabComment` (name, creation, modified, modified_by, owner, comment_type, "+
		"comment_email, reference_doctype, reference_name, content) VALUES (?, ?, ?, 'Administrator', 'Administrator', ?, 'admin@example.com', ?, ?, ?)",
		hex.EncodeToString(b[:]), now, now, typ, doctype, name, content); err != nil {
		t.Fatal(err)
	}
}

// renamedFrom is the English content rename_doc writes:
// _("renamed from {0} to {1}") with frappe.bold, after sanitize_html.
func renamedFrom(old, new string) string {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	return fmt.Sprintf("renamed from <strong>%s</strong> to <strong>%s</strong>", esc.Replace(old), esc.Replace(new))
}

func TestCheckReferences(t *testing.T) {
	ctx := context.Background()
	f := newSelectionFixture(t)
	now := f.site.Format(f.site.Now())
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := f.db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, pl := range []struct {
		name             string
		enabled, selling int
	}{
		{"Retail", 1, 1}, {"R&D <Prices>", 1, 1}, {"R and D xPricesx", 1, 1}, {"Chain A", 1, 1}, {"Gone", 1, 1}, {"Old Prices", 0, 1}, {"Retail Old", 1, 1},
	} {
		exec("INSERT INTO `tabPrice List` (name, creation, modified, modified_by, owner, enabled, price_list_name, currency, buying, selling) "+
			"VALUES (?, ?, ?, 'Administrator', 'Administrator', ?, ?, 'KES', 0, ?)", pl.name, now, now, pl.enabled, pl.name, pl.selling)
	}
	f.renameDoc(t, "Price List", "price_list_name", "Retail", "Retail KE", renamedFrom("Retail", "Retail KE"))
	f.renameDoc(t, "Price List", "price_list_name", "R&D <Prices>", "R&D 2", renamedFrom("R&D <Prices>", "R&D 2"))
	// Newer, and like the escaped name in SQL (where & < > match anything), but
	// another name.
	f.renameDoc(t, "Price List", "price_list_name", "R and D xPricesx", "Decoy", renamedFrom("R and D xPricesx", "Decoy"))
	// A → B → C: the first comment moves to C with the second rename.
	f.renameDoc(t, "Price List", "price_list_name", "Chain A", "Chain B", renamedFrom("Chain A", "Chain B"))
	f.renameDoc(t, "Price List", "price_list_name", "Chain B", "Chain C", renamedFrom("Chain B", "Chain C"))
	// Renamed, then deleted: the comment stays behind, naming nothing.
	f.renameDoc(t, "Price List", "price_list_name", "Gone", "Gone 2", renamedFrom("Gone", "Gone 2"))
	exec("DELETE FROM `tabPrice List` WHERE name = 'Gone 2'")
	// Bold names that are not a rename of a Price List called "Nope".
	f.addComment(t, "Edit", "Item", "X-1", renamedFrom("Nope", "X-1"))
	f.addComment(t, "Comment", "Price List", "Standard Selling", "see <strong>Nope</strong>")
	// Item Groups: a rename in German, the names in the other order.
	f.renameDoc(t, "Item Group", "item_group_name", "Lamps", "Leuchten", "<strong>Lamps</strong> wurde in <strong>Leuchten</strong> umbenannt")
	f.renameDoc(t, "Item Group", "item_group_name", "Services", "Dienste", "umbenannt: <strong>Dienste</strong> ← <strong>Services</strong>")
	// Warehouses (renaming them is not allowed on v15).
	for _, w := range []struct {
		name     string
		disabled int
	}{{"Stores - AC", 0}, {"Old Store - AC", 1}} {
		exec("INSERT INTO `tabWarehouse` (name, creation, modified, modified_by, owner, disabled, warehouse_name, company, lft, rgt) "+
			"VALUES (?, ?, ?, 'Administrator', 'Administrator', ?, ?, 'Acme', 0, 0)", w.name, now, now, w.disabled, w.name)
	}

	type ref struct{ kind, key, name, problem, renamedTo string }
	tests := []struct {
		name string
		sel  detector.Selection
		want []ref
	}{
		{"nothing named", detector.Selection{}, nil},
		{"names that are fine", detector.Selection{
			PriceLists: []string{"Standard Selling", "retail ke", "Chain C"}, Warehouses: []string{"Stores - AC"},
			ItemGroups: []string{"Products", "Leuchten"}, Brands: []string{"No tabBrand: not checked"}}, nil},
		{"renamed price list", detector.Selection{PriceLists: []string{"Standard Selling", "Retail"}},
			[]ref{{detector.KindPriceList, "erp.price_lists", "Retail", detector.ProblemMissing, "Retail KE"}}},
		{"renamed, with HTML-escaped characters", detector.Selection{PriceLists: []string{"R&D <Prices>"}},
			[]ref{{detector.KindPriceList, "erp.price_lists", "R&D <Prices>", detector.ProblemMissing, "R&D 2"}}},
		{"renamed twice", detector.Selection{PriceLists: []string{"Chain A", "Chain B"}}, []ref{
			{detector.KindPriceList, "erp.price_lists", "Chain A", detector.ProblemMissing, "Chain C"},
			{detector.KindPriceList, "erp.price_lists", "Chain B", detector.ProblemMissing, "Chain C"}}},
		{"renamed, then deleted", detector.Selection{PriceLists: []string{"Gone"}},
			[]ref{{detector.KindPriceList, "erp.price_lists", "Gone", detector.ProblemMissing, ""}}},
		{"missing, bold elsewhere", detector.Selection{PriceLists: []string{"Nope"}},
			[]ref{{detector.KindPriceList, "erp.price_lists", "Nope", detector.ProblemMissing, ""}}},
		{"a prefix of a renamed name", detector.Selection{PriceLists: []string{"Retail K"}},
			[]ref{{detector.KindPriceList, "erp.price_lists", "Retail K", detector.ProblemMissing, ""}}},
		{"disabled and not selling", detector.Selection{PriceLists: []string{"Old Prices", "Standard Buying", "Wholesale"}}, []ref{
			{detector.KindPriceList, "erp.price_lists", "Old Prices", detector.ProblemDisabled, ""},
			{detector.KindPriceList, "erp.price_lists", "Standard Buying", detector.ProblemNotSelling, ""}}},
		{"warehouses", detector.Selection{Warehouses: []string{"Old Store - AC", "Stores - AC", "Nowhere - AC"}}, []ref{
			{detector.KindWarehouse, "erp.warehouses", "Old Store - AC", detector.ProblemDisabled, ""},
			{detector.KindWarehouse, "erp.warehouses", "Nowhere - AC", detector.ProblemMissing, ""}}},
		{"item groups renamed in another language", detector.Selection{ItemGroups: []string{"Products", "Lamps", "Services", "Nope"}}, []ref{
			{detector.KindItemGroup, "erp.item_groups", "Lamps", detector.ProblemMissing, "Leuchten"},
			{detector.KindItemGroup, "erp.item_groups", "Services", detector.ProblemMissing, "Dienste"},
			{detector.KindItemGroup, "erp.item_groups", "Nope", detector.ProblemMissing, ""}}},
		{"every kind, in settings order", detector.Selection{ItemGroups: []string{"Lamps"}, Warehouses: []string{"Nowhere - AC"}, PriceLists: []string{"Retail"}}, []ref{
			{detector.KindPriceList, "erp.price_lists", "Retail", detector.ProblemMissing, "Retail KE"},
			{detector.KindWarehouse, "erp.warehouses", "Nowhere - AC", detector.ProblemMissing, ""},
			{detector.KindItemGroup, "erp.item_groups", "Lamps", detector.ProblemMissing, "Leuchten"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			det := f.detectorWith(t, detector.Config{Selection: tc.sel})
			refs, err := det.CheckReferences(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []ref
			for _, r := range refs {
				got = append(got, ref{r.Kind, r.Key, r.Name, r.Problem, r.RenamedTo})
				if !strings.Contains(r.Message, r.Key+" names "+fmt.Sprintf("%q", r.Name)) {
					t.Errorf("message %q does not name %s and %q", r.Message, r.Key, r.Name)
				}
				if fix := r.Fix("/etc/erpsync/settings.toml"); !strings.Contains(fix, r.Key+" of /etc/erpsync/settings.toml") {
					t.Errorf("fix %q does not name the key and the file", fix)
				}
				if r.Severe() != (r.Problem != detector.ProblemNotSelling) {
					t.Errorf("%s %q: severe %v", r.Problem, r.Name, r.Severe())
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("references:\n got %q\nwant %q", got, tc.want)
			}
		})
	}

	// The words users read.
	refs, err := detector.CheckReferences(ctx, f.db, detector.Selection{PriceLists: []string{"Retail", "Retail KE"}, Warehouses: []string{"Nowhere - AC"}})
	if err != nil {
		t.Fatal(err)
	}
	wantText := []string{
		`erp.price_lists names "Retail", which does not exist; ERPNext recorded its rename to "Retail KE": ` +
			`remove "Retail" from erp.price_lists of settings.toml (it names "Retail KE" already)`,
		`erp.warehouses names "Nowhere - AC", which does not exist: no Warehouse has that name, and ERPNext recorded no rename of it, so no stock of it is sent: ` +
			`write the name of an existing Warehouse (as ERPNext shows it) instead of "Nowhere - AC" in erp.warehouses of settings.toml, or remove it`,
	}
	if len(refs) != len(wantText) {
		t.Fatalf("%d references, want %d: %+v", len(refs), len(wantText), refs)
	}
	for i, r := range refs {
		if g := r.Text("settings.toml"); g != wantText[i] {
			t.Errorf("text:\n got %s\nwant %s", g, wantText[i])
		}
	}
	refs, err = detector.CheckReferences(ctx, f.db, detector.Selection{PriceLists: []string{"Retail"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Fix("") != `write "Retail KE" instead of "Retail" in erp.price_lists of the settings file` {
		t.Errorf("fix: %+v", refs)
	}
}

// Brands are checked where the site has tabBrand (every ERPNext site; the
// test schema has none, and then brands are not checked).
func TestCheckReferencesBrands(t *testing.T) {
	ctx := context.Background()
	f := newSelectionFixture(t)
	sel := detector.Selection{Brands: []string{"Philips", "Acme", "Osram"}}
	refs, err := detector.CheckReferences(ctx, f.db, sel)
	if err != nil || len(refs) != 0 {
		t.Fatalf("without tabBrand: %+v, %v; want nothing checked", refs, err)
	}
	// Brand (ERPNext v15): autoname field:brand, allow_rename.
	now := f.site.Format(f.site.Now())
	for _, q := range []string{
		"CREATE TABLE `tabBrand` (`name` varchar(140) NOT NULL PRIMARY KEY, `creation` datetime(6), `modified` datetime(6), " +
			"`modified_by` varchar(140), `owner` varchar(140), `docstatus` int(1) NOT NULL DEFAULT 0, `idx` int(8) NOT NULL DEFAULT 0, " +
			"`brand` varchar(140) UNIQUE, `image` text, `description` text, KEY `modified` (`modified`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
		"INSERT INTO `tabBrand` (name, creation, modified, brand) VALUES ('Philips', '" + now + "', '" + now + "', 'Philips'), ('OSRAM', '" + now + "', '" + now + "', 'OSRAM')",
	} {
		if _, err := f.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	refs, err = detector.CheckReferences(ctx, f.db, sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Kind != detector.KindBrand || refs[0].Key != "erp.brands" || refs[0].Name != "Acme" || refs[0].Problem != detector.ProblemMissing {
		t.Errorf("with tabBrand: %+v, want Acme missing", refs)
	}
}
