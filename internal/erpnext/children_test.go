package erpnext

import (
	"context"
	"strings"
	"testing"
	"time"
)

// childRows returns name|key|value|idx|variant_of|creation|modified of the Item's rows of spec, by idx.
func childRows(t *testing.T, s *Site, spec childSpec, parent string) [][]string {
	t.Helper()
	value, variantOf := "`conversion_factor`", "'-'"
	if spec.table == attributeSpec.table {
		value, variantOf = "COALESCE(`attribute_value`, '-')", "COALESCE(`variant_of`, '-')"
	}
	return rowsOf(t, s.DB, "SELECT `name`, `"+spec.key+"`, "+value+", `idx`, "+variantOf+", `creation`, `modified` FROM `"+spec.table+"` "+
		"WHERE `parent` = ? AND `parenttype` = 'Item' AND `parentfield` = ? ORDER BY `idx`", parent, spec.field)
}

// checkChildRows compares rows (without their names) with want, and checks the names are hashes.
func checkChildRows(t *testing.T, what string, rows [][]string, want []string) {
	t.Helper()
	var got []string
	for _, r := range rows {
		if !hashName.MatchString(r[0]) {
			t.Errorf("%s: row name %q is not a hash", what, r[0])
		}
		got = append(got, join(r[1:]))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestSaveItemChildren(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	at := func(sec int) string { return time.Date(2026, 5, 1, 3, 0, sec, 0, time.UTC).Format(ModifiedLayout) }
	save := func(sec int, it Item) {
		t.Helper()
		s.Now = fixedClock(time.Date(2026, 5, 1, 0, 0, sec, 0, time.UTC))
		if err := s.SaveItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}

	// A template: attribute names without values; the stock UOM row is appended to the given UOMs.
	tpl := Item{Code: "TSHIRT", Group: "Apparel", StockUOM: "Nos", HasVariants: true, SalesUOM: "Box", EndOfLife: "2030-06-30",
		UOMs: []UOM{{"Box", "12"}}, Attributes: []Attribute{{Attribute: "Colour"}, {Attribute: "Size"}}}
	save(1, tpl)
	checkChildRows(t, "template uoms", childRows(t, s, uomSpec, "TSHIRT"), []string{
		"Box|12.000000000|1|-|" + at(1) + "|" + at(1), "Nos|1.000000000|2|-|" + at(1) + "|" + at(1)})
	checkChildRows(t, "template attributes", childRows(t, s, attributeSpec, "TSHIRT"), []string{
		"Colour|-|1|-|" + at(1) + "|" + at(1), "Size|-|2|-|" + at(1) + "|" + at(1)})
	if got := join(row(t, s.DB, "SELECT `sales_uom`, `end_of_life` FROM `tabItem` WHERE `name` = 'TSHIRT'")); got != "Box|2030-06-30" {
		t.Errorf("sales_uom|end_of_life = %s", got)
	}

	// A new variant: rows with a value, variant_of on each; an empty value is dropped.
	v := Item{Code: "TSHIRT-RED-M", Group: "Apparel", StockUOM: "Nos", VariantOf: "TSHIRT",
		Attributes: []Attribute{{"Colour", "Red"}, {"Fabric", " "}, {"Size", "M"}}}
	save(2, v)
	first := childRows(t, s, attributeSpec, v.Code)
	checkChildRows(t, "new variant attributes", first, []string{
		"Colour|Red|1|TSHIRT|" + at(2) + "|" + at(2), "Size|M|2|TSHIRT|" + at(2) + "|" + at(2)})
	checkChildRows(t, "new variant uoms", childRows(t, s, uomSpec, v.Code), []string{"Nos|1.000000000|1|-|" + at(2) + "|" + at(2)})
	if got := join(row(t, s.DB, "SELECT COALESCE(`sales_uom`, '-'), `end_of_life` FROM `tabItem` WHERE `name` = ?", v.Code)); got != "-|2099-12-31" {
		t.Errorf("defaults sales_uom|end_of_life = %s", got)
	}

	// A later save: kept rows keep name and creation and get the new modified and idx; a row added now
	// has no variant_of (only a new variant's rows get it); removed rows are deleted.
	v.Attributes = []Attribute{{"Size", "L"}, {"Colour", "Red"}, {"Sleeve", "Long"}}
	v.UOMs = []UOM{{"Nos", "1"}, {"Pair", "2.5"}}
	save(3, v)
	again := childRows(t, s, attributeSpec, v.Code)
	checkChildRows(t, "re-saved variant attributes", again, []string{
		"Size|L|1|TSHIRT|" + at(2) + "|" + at(3), "Colour|Red|2|TSHIRT|" + at(2) + "|" + at(3), "Sleeve|Long|3|-|" + at(2) + "|" + at(3)})
	if again[0][0] != first[1][0] || again[1][0] != first[0][0] {
		t.Errorf("kept rows renamed: %v → %v", first, again)
	}
	checkChildRows(t, "re-saved variant uoms", childRows(t, s, uomSpec, v.Code), []string{
		"Nos|1.000000000|1|-|" + at(2) + "|" + at(3), "Pair|2.500000000|2|-|" + at(2) + "|" + at(3)})

	// The stock UOM of an existing item changes: the UOM table is emptied and gets the new stock UOM only.
	tpl.StockUOM = "Pair"
	tpl.UOMs = []UOM{{"Box", "6"}}
	oldNames := map[string]bool{}
	for _, r := range childRows(t, s, uomSpec, "TSHIRT") {
		oldNames[r[0]] = true
	}
	save(4, tpl)
	rows := childRows(t, s, uomSpec, "TSHIRT")
	checkChildRows(t, "uoms after a stock UOM change", rows, []string{"Pair|1.000000000|1|-|" + at(1) + "|" + at(4)})
	if len(rows) == 1 && oldNames[rows[0][0]] {
		t.Errorf("the new stock UOM row reused the name %s", rows[0][0])
	}

	// Without attributes any more, the rows go.
	tpl.Attributes = nil
	save(5, tpl)
	if n := count(t, s.DB, "SELECT COUNT(*) FROM `tabItem Variant Attribute` WHERE `parent` = 'TSHIRT'"); n != 0 {
		t.Errorf("%d attribute rows left on the template", n)
	}

	for name, bad := range map[string]Item{
		"duplicate uom":         {UOMs: []UOM{{"Box", "2"}, {"Box", "3"}}},
		"stock uom factor":      {UOMs: []UOM{{"Nos", "2"}}},
		"bad factor":            {UOMs: []UOM{{"Box", "two"}}},
		"duplicate attribute":   {Attributes: []Attribute{{"Colour", "Red"}, {"Colour", "Blue"}}},
		"empty attribute":       {Attributes: []Attribute{{"", "Red"}}},
		"end of life not dated": {EndOfLife: "31/12/2030"},
	} {
		bad.Code, bad.Group, bad.StockUOM = "BAD", "G", "Nos"
		if err := s.SaveItem(ctx, bad); err == nil {
			t.Errorf("%s: saved", name)
		}
	}
}
