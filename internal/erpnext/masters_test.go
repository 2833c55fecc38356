package erpnext

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSavePriceList(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SaveItem(ctx, Item{Code: "P1", Group: "G", StockUOM: "Nos"}))
	must(s.SaveItem(ctx, Item{Code: "P2", Group: "G", StockUOM: "Nos"}))
	for _, code := range []string{"P1", "P2"} {
		must(s.SetPrice(ctx, code, Price{PriceList: PriceListSelling, Currency: "KES", Rate: "10"}))
	}
	must(s.SetPrice(ctx, "P1", Price{PriceList: PriceListWholesale, Currency: "KES", Rate: "9"}))
	wholesale := row(t, s.DB, "SELECT `modified` FROM `tabItem Price` WHERE `price_list` = ?", PriceListWholesale)[0]
	created := row(t, s.DB, "SELECT `creation` FROM `tabPrice List` WHERE `name` = ?", PriceListSelling)[0]

	// A no-op save still rewrites every Item Price of the list with the database's NOW().
	s.Now = fixedClock(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	before := row(t, s.DB, "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i:%s.000000')")[0]
	must(s.SavePriceList(ctx, PriceList{Name: PriceListSelling, Currency: "USD", Enabled: true, Selling: true}))
	after := row(t, s.DB, "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i:%s.000000')")[0]
	if got := join(row(t, s.DB, "SELECT `price_list_name`, `currency`, `enabled`, `buying`, `selling`, `creation`, `modified` FROM `tabPrice List` WHERE `name` = ?", PriceListSelling)); got != PriceListSelling+"|USD|1|0|1|"+created+"|2026-03-01 03:00:00.000000" {
		t.Errorf("price list row %s", got)
	}
	for _, r := range rowsOf(t, s.DB, "SELECT `item_code`, `currency`, `buying`, `selling`, `modified` FROM `tabItem Price` WHERE `price_list` = ?", PriceListSelling) {
		if join(r[1:4]) != "USD|0|1" || r[4] < before || r[4] > after || !strings.HasSuffix(r[4], ".000000") {
			t.Errorf("price of %s after the list save: %s, want USD|0|1 and modified = NOW() in [%s, %s]", r[0], join(r), before, after)
		}
	}
	if got := row(t, s.DB, "SELECT `modified` FROM `tabItem Price` WHERE `price_list` = ?", PriceListWholesale)[0]; got != wholesale {
		t.Errorf("a price of another list moved: %s → %s", wholesale, got)
	}

	// A new list; SetPrice takes buying/selling from it, whatever its name says.
	must(s.SavePriceList(ctx, PriceList{Name: "Buying Club", Currency: "KES", Enabled: true, Selling: true}))
	if got := join(row(t, s.DB, "SELECT `creation`, `modified`, `owner` FROM `tabPrice List` WHERE `name` = 'Buying Club'")); got != "2026-03-01 03:00:00.000000|2026-03-01 03:00:00.000000|Administrator" {
		t.Errorf("new price list %s", got)
	}
	must(s.SetPrice(ctx, "P1", Price{PriceList: "Buying Club", Currency: "KES", Rate: "8"}))
	if got := join(row(t, s.DB, "SELECT `buying`, `selling` FROM `tabItem Price` WHERE `price_list` = 'Buying Club'")); got != "0|1" {
		t.Errorf("price in Buying Club: buying|selling = %s, want 0|1", got)
	}
	// Disabled: its prices are rewritten, new ones refused.
	must(s.SavePriceList(ctx, PriceList{Name: "Buying Club", Currency: "KES", Buying: true}))
	if got := join(row(t, s.DB, "SELECT `buying`, `selling` FROM `tabItem Price` WHERE `price_list` = 'Buying Club'")); got != "1|0" {
		t.Errorf("after the list turned buying: %s", got)
	}
	if err := s.SetPrice(ctx, "P2", Price{PriceList: "Buying Club", Currency: "KES", Rate: "8"}); !errors.Is(err, ErrPriceListDisabled) {
		t.Errorf("price in a disabled list: %v", err)
	}
	for _, bad := range []PriceList{{Name: "X", Currency: "KES", Enabled: true}, {Name: "", Currency: "KES", Selling: true}, {Name: "X", Selling: true}} {
		if err := s.SavePriceList(ctx, bad); err == nil {
			t.Errorf("SavePriceList(%+v) accepted", bad)
		}
	}
}

// tree returns name|parent|is_group|lft|rgt|old_parent of every warehouse, by lft.
func tree(t *testing.T, s *Site) []string {
	t.Helper()
	var out []string
	for _, r := range rowsOf(t, s.DB, "SELECT `name`, COALESCE(`parent_warehouse`, '-'), `is_group`, `lft`, `rgt`, COALESCE(`old_parent`, '-') FROM `tabWarehouse` ORDER BY `lft`") {
		out = append(out, join(r))
	}
	return out
}

func TestSaveWarehouse(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	steps := []struct {
		w    Warehouse
		want []string
	}{
		{Warehouse{Name: "All - X", IsGroup: true, Company: "X"}, []string{"All - X|-|1|1|2|"}},
		{Warehouse{Name: "A - X", Parent: "All - X", IsGroup: true}, []string{"All - X|-|1|1|4|", "A - X|All - X|1|2|3|All - X"}},
		{Warehouse{Name: "B - X", Parent: "All - X", IsGroup: true}, []string{"All - X|-|1|1|6|", "A - X|All - X|1|2|3|All - X", "B - X|All - X|1|4|5|All - X"}},
		{Warehouse{Name: "A1 - X", Parent: "A - X"}, []string{"All - X|-|1|1|8|", "A - X|All - X|1|2|5|All - X", "A1 - X|A - X|0|3|4|A - X", "B - X|All - X|1|6|7|All - X"}},
		{Warehouse{Name: "A2 - X", Parent: "A - X"}, []string{"All - X|-|1|1|10|", "A - X|All - X|1|2|7|All - X", "A1 - X|A - X|0|3|4|A - X",
			"A2 - X|A - X|0|5|6|A - X", "B - X|All - X|1|8|9|All - X"}},
		{Warehouse{Name: "Other - X", IsGroup: true}, []string{"All - X|-|1|1|10|", "A - X|All - X|1|2|7|All - X", "A1 - X|A - X|0|3|4|A - X",
			"A2 - X|A - X|0|5|6|A - X", "B - X|All - X|1|8|9|All - X", "Other - X|-|1|11|12|"}},
		// Moves: A1 under B (update_move_node), then A under Other with its remaining child.
		{Warehouse{Name: "A1 - X", Parent: "B - X"}, []string{"All - X|-|1|1|10|", "A - X|All - X|1|2|5|All - X", "A2 - X|A - X|0|3|4|A - X",
			"B - X|All - X|1|6|9|All - X", "A1 - X|B - X|0|7|8|B - X", "Other - X|-|1|11|12|"}},
		{Warehouse{Name: "A - X", Parent: "Other - X", IsGroup: true}, []string{"All - X|-|1|1|6|", "B - X|All - X|1|2|5|All - X", "A1 - X|B - X|0|3|4|B - X",
			"Other - X|-|1|7|12|", "A - X|Other - X|1|8|11|Other - X", "A2 - X|A - X|0|9|10|A - X"}},
		// A plain save changes no lft/rgt.
		{Warehouse{Name: "A2 - X", Parent: "A - X", Company: "X"}, []string{"All - X|-|1|1|6|", "B - X|All - X|1|2|5|All - X", "A1 - X|B - X|0|3|4|B - X",
			"Other - X|-|1|7|12|", "A - X|Other - X|1|8|11|Other - X", "A2 - X|A - X|0|9|10|A - X"}},
	}
	for i, st := range steps {
		s.Now = fixedClock(time.Date(2026, 4, 1, 0, 0, i, 0, time.UTC))
		before := map[string]string{}
		for _, r := range rowsOf(t, s.DB, "SELECT `name`, `modified`, `creation` FROM `tabWarehouse`") {
			before[r[0]] = r[1] + "|" + r[2]
		}
		if err := s.SaveWarehouse(ctx, st.w); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := tree(t, s); strings.Join(got, "\n") != strings.Join(st.want, "\n") {
			t.Errorf("step %d (%s under %q):\n got %s\nwant %s", i, st.w.Name, st.w.Parent, strings.Join(got, "\n     "), strings.Join(st.want, "\n     "))
		}
		// Only the saved row's modified moves; the others' lft/rgt changed raw.
		now := time.Date(2026, 4, 1, 3, 0, i, 0, time.UTC).Format(ModifiedLayout)
		for _, r := range rowsOf(t, s.DB, "SELECT `name`, `modified`, `creation` FROM `tabWarehouse`") {
			switch {
			case r[0] == st.w.Name && before[r[0]] == "":
				if r[1] != now || r[2] != now {
					t.Errorf("step %d: new %s creation/modified %s/%s, want %s", i, r[0], r[2], r[1], now)
				}
			case r[0] == st.w.Name:
				if r[1] != now || r[1]+"|"+r[2] == before[r[0]] {
					t.Errorf("step %d: saved %s modified %s, want %s", i, r[0], r[1], now)
				}
			case r[1]+"|"+r[2] != before[r[0]]:
				t.Errorf("step %d: %s modified %s → %s", i, r[0], before[r[0]], r[1])
			}
		}
	}
	if got := row(t, s.DB, "SELECT `warehouse_name` FROM `tabWarehouse` WHERE `name` = 'A2 - X'")[0]; got != "A2" {
		t.Errorf("warehouse_name %q, want A2", got)
	}
	for _, bad := range []Warehouse{
		{Name: "C - X", Parent: "A2 - X"},                   // parent is a leaf
		{Name: "C - X", Parent: "Nope - X"},                 // missing parent
		{Name: "A - X", Parent: "Other - X"},                // a group with children cannot become a leaf
		{Name: "Other - X", Parent: "A - X", IsGroup: true}, // under its own descendant
		{Name: ""},
	} {
		if err := s.SaveWarehouse(ctx, bad); err == nil {
			t.Errorf("SaveWarehouse(%+v) accepted", bad)
		}
	}
	if got := tree(t, s); strings.Join(got, "\n") != strings.Join(steps[len(steps)-1].want, "\n") {
		t.Errorf("failed saves changed the tree:\n%s", strings.Join(got, "\n"))
	}
}
