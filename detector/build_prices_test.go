package detector_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// testPrice is a tabItem Price row a test writes (addItemPrices). Empty texts
// are NULL; from and upto are days relative to the database's today (see
// day), or "" for NULL.
type testPrice struct {
	name                      string // "" for a random hash, as ERPNext names Item Prices
	list, rate, uom           string // uom "" is NULL
	from, upto                string
	customer, supplier, batch string
	packing                   int
	staleFlags                bool // buying/selling the opposite of the list's (written before a rename of the list's flags)
}

// addPriceList writes a Price List as its save does (the fixture has
// Standard Selling, Wholesale and Standard Buying).
func addPriceList(t *testing.T, f *fixture, name string, enabled, selling, buying bool) {
	t.Helper()
	now := f.site.Format(time.Now())
	if _, err := f.db.Exec("INSERT INTO `tabPrice List` (name, creation, modified, modified_by, owner, enabled, price_list_name, currency, buying, selling) "+
		"VALUES (?, ?, ?, 'Administrator', 'Administrator', ?, ?, 'KES', ?, ?)", name, now, now, enabled, name, buying, selling); err != nil {
		t.Fatal(err)
	}
}

// addItemPrices writes rows of item code as an Item Price insert does:
// validate copies currency, buying and selling from the Price List
// (update_price_list_details) and item_name, brand and description from the
// item; before_save sets reference to the party. A list with no tabPrice List
// row (ERPNext refuses it; such rows stay behind raw deletes) gets KES and
// selling.
func addItemPrices(t *testing.T, f *fixture, code string, rows ...testPrice) {
	t.Helper()
	for _, r := range rows {
		currency, buying, selling := "KES", false, true
		err := f.db.QueryRow("SELECT currency, buying, selling FROM `tabPrice List` WHERE name = ?", r.list).Scan(&currency, &buying, &selling)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		if r.staleFlags {
			buying, selling = !buying, !selling
		}
		name := r.name
		if name == "" {
			name = priceName(t)
		}
		now := f.site.Format(time.Now())
		reference := r.customer
		if reference == "" {
			reference = r.supplier
		}
		_, err = f.db.Exec("INSERT INTO `tabItem Price` (name, creation, modified, modified_by, owner, docstatus, idx, item_code, uom, packing_unit, "+
			"item_name, brand, item_description, price_list, customer, supplier, batch_no, buying, selling, currency, price_list_rate, valid_from, valid_upto, reference) "+
			"SELECT ?, ?, ?, 'Administrator', 'Administrator', 0, 0, name, ?, ?, item_name, brand, description, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM `tabItem` WHERE name = ?",
			name, now, now, nullText(r.uom), r.packing, r.list, nullText(r.customer), nullText(r.supplier), nullText(r.batch), buying, selling, currency, r.rate,
			day(t, f, r.from), day(t, f, r.upto), nullText(reference), code)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// setSalesUOM saves item code with sales_uom and its UOM Conversion Detail
// rows (uom, conversion_factor pairs after the stock UOM's row, which the
// Item's validate adds with factor 1), as an Item save writes them.
func setSalesUOM(t *testing.T, f *fixture, code, salesUOM string, factors ...[2]string) {
	t.Helper()
	now := f.site.Format(time.Now())
	if _, err := f.db.Exec("UPDATE `tabItem` SET sales_uom = ?, modified = ? WHERE name = ?", nullText(salesUOM), now, code); err != nil {
		t.Fatal(err)
	}
	var stockUOM string
	if err := f.db.QueryRow("SELECT stock_uom FROM `tabItem` WHERE name = ?", code).Scan(&stockUOM); err != nil {
		t.Fatal(err)
	}
	for idx, uf := range append([][2]string{{stockUOM, "1"}}, factors...) {
		if _, err := f.db.Exec("INSERT INTO `tabUOM Conversion Detail` (name, creation, modified, modified_by, owner, docstatus, idx, uom, conversion_factor, "+
			"parent, parentfield, parenttype) SELECT ?, creation, ?, 'Administrator', owner, 0, ?, ?, ?, name, 'uoms', 'Item' FROM `tabItem` WHERE name = ?",
			priceName(t), now, idx+1, uf[0], uf[1], code); err != nil {
			t.Fatal(err)
		}
	}
}

// setEndOfLife saves item code with end_of_life (a day as testPrice's).
func setEndOfLife(t *testing.T, f *fixture, code, eol string) {
	t.Helper()
	if _, err := f.db.Exec("UPDATE `tabItem` SET end_of_life = ?, modified = ? WHERE name = ?", day(t, f, eol), f.site.Format(time.Now()), code); err != nil {
		t.Fatal(err)
	}
}

func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func priceName(t *testing.T) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// day is the date n days from the database's today in the site's zone
// (Detector.Now), for n "+3", "-1", "0"; nil for "".
func day(t *testing.T, f *fixture, n string) any {
	t.Helper()
	if n == "" {
		return nil
	}
	return dayText(t, f, n)
}

func dayText(t *testing.T, f *fixture, n string) string {
	t.Helper()
	var k int
	if _, err := fmt.Sscanf(n, "%d", &k); err != nil {
		t.Fatalf("day %q: %v", n, err)
	}
	now, err := f.det.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	today, err := time.Parse(time.DateOnly, now[:10])
	if err != nil {
		t.Fatal(err)
	}
	return today.AddDate(0, 0, k).Format(time.DateOnly)
}

func buildOne(t *testing.T, det *detector.Detector, codes []string, code string) detector.Item {
	t.Helper()
	items, err := det.Build(context.Background(), codes)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Code == code {
			if it.Problem != nil {
				t.Fatalf("item %s: problem %v", code, it.Problem)
			}
			return it
		}
	}
	t.Fatalf("Build(%q) returned no item %s", codes, code)
	return detector.Item{}
}

// Which price rows are sent: by default the rows of enabled selling lists,
// else exactly the named lists; never a supplier's row; a customer's only
// with CustomerPrices. Each entry carries its list's selling and buying.
func TestBuildPriceSelection(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	if err := f.site.SaveItem(ctx, erpnext.Item{Code: "SEL-1", Group: "Products", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	addPriceList(t, f, "Old Selling", false, true, false)
	addItemPrices(t, f, "SEL-1",
		testPrice{list: "Standard Selling", rate: "10"},
		testPrice{list: "Wholesale", rate: "9", staleFlags: true},
		testPrice{list: "Standard Buying", rate: "5"},
		testPrice{list: "Old Selling", rate: "8"},
		testPrice{list: "Ghost", rate: "7"}, // no tabPrice List row
		testPrice{list: "Standard Selling", rate: "6", customer: "Cust A"},
		testPrice{list: "Standard Selling", rate: "4", supplier: "Supp B"},
		testPrice{list: "Standard Buying", rate: "3", supplier: "Supp B"},
	)
	tests := []struct {
		name string
		sel  detector.Selection
		want []string // price_list/customer selling buying, in the order sent
	}{
		{"enabled selling lists", detector.Selection{},
			[]string{"Standard Selling/ true false", "Wholesale/ true false"}},
		{"and customers' rows", detector.Selection{CustomerPrices: true},
			[]string{"Standard Selling/ true false", "Standard Selling/Cust A true false", "Wholesale/ true false"}},
		{"named lists, whatever their flags", detector.Selection{PriceLists: []string{"Standard Buying", "Old Selling", "Ghost"}},
			[]string{"Ghost/ true false", "Old Selling/ true false", "Standard Buying/ false true"}},
		{"named lists and customers' rows", detector.Selection{PriceLists: []string{"Standard Selling"}, CustomerPrices: true},
			[]string{"Standard Selling/ true false", "Standard Selling/Cust A true false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			det, err := detector.New(ctx, f.db, detector.Config{Selection: tc.sel})
			if err != nil {
				t.Fatal(err)
			}
			it := buildOne(t, det, []string{"SEL-1"}, "SEL-1")
			var prices []struct {
				PriceList string  `json:"price_list"`
				Customer  *string `json:"customer"`
				Selling   bool    `json:"selling"`
				Buying    bool    `json:"buying"`
			}
			raw := member(t, it, "prices")
			if err := json.Unmarshal([]byte(raw), &prices); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range prices {
				c := ""
				if p.Customer != nil {
					c = *p.Customer
				}
				got = append(got, fmt.Sprintf("%s/%s %t %t", p.PriceList, c, p.Selling, p.Buying))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("prices = %q, want %q\n%s", got, tc.want, raw)
			}
		})
	}
	t.Run("members in JCS order", func(t *testing.T) {
		it := buildOne(t, f.det, []string{"SEL-1"}, "SEL-1")
		want := `[{"batch_no":null,"buying":false,"currency":"KES","customer":null,"price_list":"Standard Selling","rate":10,"selling":true,"supplier":null,"uom":null,"valid_from":null,"valid_upto":null},` +
			`{"batch_no":null,"buying":false,"currency":"KES","customer":null,"price_list":"Wholesale","rate":9,"selling":true,"supplier":null,"uom":null,"valid_from":null,"valid_upto":null}]`
		if got := member(t, it, "prices"); got != want {
			t.Errorf("prices = %s\nwant %s", got, want)
		}
	})
}

// effective_prices is what get_price_list_rate_for would quote today to a
// walk-in customer for qty 1 in the item's sales UOM, per enabled list.
func TestBuildEffectivePrices(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	addPriceList(t, f, "Old Selling", false, true, false)
	addPriceList(t, f, "\U0001F600 Emoji", true, true, false) // UTF-16 surrogates: before U+FB01 in JCS, after it in UTF-8
	addPriceList(t, f, "\uFB01ne", true, true, false)
	ss := "Standard Selling"
	box12 := [][2]string{{"Box", "12"}}
	tests := []struct {
		name      string
		sel       detector.Selection
		salesUOM  string      // with factors, the item's sales UOM
		factors   [][2]string // the item's UOM Conversion Detail rows besides the stock UOM's
		rows      []testPrice
		template  []testPrice // non-nil: the item is a variant of a template with these rows
		tmplUOMs  [][2]string // the template's UOM Conversion Detail rows
		want      string      // effective_prices, with "T" for the template's code and dates as "@+3"
		wantExtra string      // for a variant, what its template's own entry must be (when built together)
	}{
		{name: "open validity", rows: []testPrice{{list: ss, rate: "10.000000000"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":10,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "latest valid_from that has begun", rows: []testPrice{
			{list: ss, rate: "9", from: "-10"}, {list: ss, rate: "10", from: "-1", upto: "+30"}, {list: ss, rate: "11", from: "+1"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":10,"uom":"Nos","valid_from":"@-1","valid_upto":"@+30"}}`},
		{name: "expired and future rows quote nothing", rows: []testPrice{
			{list: ss, rate: "9", from: "-10", upto: "-1"}, {list: ss, rate: "11", from: "+1"}},
			want: `{}`},
		{name: "valid_from and valid_upto today", rows: []testPrice{{list: ss, rate: "7.5", from: "0", upto: "0"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":7.5,"uom":"Nos","valid_from":"@0","valid_upto":"@0"}}`},
		{name: "no valid_from sorts last", rows: []testPrice{{list: ss, rate: "5"}, {list: ss, rate: "6", from: "-30"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":6,"uom":"Nos","valid_from":"@-30","valid_upto":null}}`},
		{name: "equal keys: by name", rows: []testPrice{{name: "b000000000", list: ss, rate: "2", uom: "Nos"}, {name: "a000000000", list: ss, rate: "1", uom: "Nos"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":1,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "sales UOM row before the stock UOM row", salesUOM: "Box", factors: box12,
			rows: []testPrice{{list: ss, rate: "9", uom: "Nos", from: "-1"}, {list: ss, rate: "100", uom: "Box", from: "-10"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":100,"uom":"Box","valid_from":"@-10","valid_upto":null}}`},
		{name: "stock UOM row times the conversion factor", salesUOM: "Box", factors: box12,
			rows: []testPrice{{list: ss, rate: "9.990000000", uom: "Nos"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":119.88,"uom":"Box","valid_from":null,"valid_upto":null}}`},
		{name: "exact product", salesUOM: "Box", factors: [][2]string{{"Box", "0.333333333"}},
			rows: []testPrice{{list: ss, rate: "99999999999.999999999", uom: "Nos"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":"33333333299.999999999666666667","uom":"Box","valid_from":null,"valid_upto":null}}`},
		{name: "a newer row without UOM before an older sales UOM row, times the factor", salesUOM: "Box", factors: box12,
			rows: []testPrice{{list: ss, rate: "100", uom: "Box", from: "-10"}, {list: ss, rate: "8", from: "-1"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":96,"uom":"Box","valid_from":"@-1","valid_upto":null}}`},
		{name: "no conversion row: factor 1", salesUOM: "Box",
			rows: []testPrice{{list: ss, rate: "9", uom: "Nos"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":9,"uom":"Box","valid_from":null,"valid_upto":null}}`},
		{name: "packing_unit 6: nothing", rows: []testPrice{{list: ss, rate: "10", uom: "Nos", packing: 6}},
			want: `{}`},
		{name: "packing_unit 6 on the sales UOM row: no stock UOM fallback", salesUOM: "Box", factors: box12,
			rows: []testPrice{{list: ss, rate: "100", uom: "Box", packing: 6}, {list: ss, rate: "9", uom: "Nos"}},
			want: `{}`},
		{name: "packing_unit 1 passes", rows: []testPrice{{list: ss, rate: "10", uom: "Nos", packing: 1}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":10,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "the stock UOM lookup has no packing check", salesUOM: "Box", factors: box12,
			rows: []testPrice{{list: ss, rate: "9", uom: "Nos", packing: 6}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":108,"uom":"Box","valid_from":null,"valid_upto":null}}`},
		{name: "customers' and batches' rows are not quoted", sel: detector.Selection{CustomerPrices: true},
			rows: []testPrice{{list: ss, rate: "5", customer: "Cust A", from: "-1"}, {list: ss, rate: "6", batch: "B-1", from: "-1"}, {list: ss, rate: "7", from: "-5"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":7,"uom":"Nos","valid_from":"@-5","valid_upto":null}}`},
		{name: "disabled and unknown lists quote nothing", sel: detector.Selection{PriceLists: []string{"Old Selling", "Ghost", ss}},
			rows: []testPrice{{list: "Old Selling", rate: "5"}, {list: "Ghost", rate: "6"}, {list: ss, rate: "7"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":7,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "one entry per list, in JCS order", rows: []testPrice{
			{list: "\uFB01ne", rate: "1"}, {list: "\U0001F600 Emoji", rate: "2"}, {list: "Wholesale", rate: "3"}, {list: ss, rate: "4"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":4,"uom":"Nos","valid_from":null,"valid_upto":null},` +
				`"Wholesale":{"currency":"KES","inherited_from":null,"rate":3,"uom":"Nos","valid_from":null,"valid_upto":null},` +
				`"` + "\U0001F600 Emoji" + `":{"currency":"KES","inherited_from":null,"rate":2,"uom":"Nos","valid_from":null,"valid_upto":null},` +
				`"` + "\uFB01ne" + `":{"currency":"KES","inherited_from":null,"rate":1,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "a variant inherits its template's price", rows: []testPrice{{list: "Wholesale", rate: "9"}},
			template: []testPrice{{list: ss, rate: "50", from: "-2"}, {list: "Wholesale", rate: "45"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":"T","rate":50,"uom":"Nos","valid_from":"@-2","valid_upto":null},` +
				`"Wholesale":{"currency":"KES","inherited_from":null,"rate":9,"uom":"Nos","valid_from":null,"valid_upto":null}}`,
			wantExtra: `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":50,"uom":"Nos","valid_from":"@-2","valid_upto":null},` +
				`"Wholesale":{"currency":"KES","inherited_from":null,"rate":45,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "a variant's own price before its template's", rows: []testPrice{{list: ss, rate: "0"}},
			template: []testPrice{{list: ss, rate: "50"}},
			want:     `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":0,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "a variant whose own row fails the packing check inherits", rows: []testPrice{{list: ss, rate: "40", packing: 6}},
			template: []testPrice{{list: ss, rate: "50"}},
			want:     `{"Standard Selling":{"currency":"KES","inherited_from":"T","rate":50,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{name: "a variant inherits in its own sales UOM and factor", salesUOM: "Box", factors: box12,
			template: []testPrice{{list: ss, rate: "5", uom: "Nos"}}, tmplUOMs: [][2]string{{"Box", "10"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":"T","rate":60,"uom":"Box","valid_from":null,"valid_upto":null}}`},
		{name: "a variant without a conversion row takes its template's", salesUOM: "Box",
			template: []testPrice{{list: ss, rate: "5", uom: "Nos"}}, tmplUOMs: [][2]string{{"Box", "10"}},
			want: `{"Standard Selling":{"currency":"KES","inherited_from":"T","rate":50,"uom":"Box","valid_from":null,"valid_upto":null}}`},
		{name: "no template price either", rows: []testPrice{{list: ss, rate: "40", from: "+1"}},
			template: []testPrice{{list: ss, rate: "50", upto: "-1"}},
			want:     `{}`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, tmpl := fmt.Sprintf("EFF-%02d", i), fmt.Sprintf("EFF-%02d-T", i)
			item := erpnext.Item{Code: code, Group: "Products", StockUOM: "Nos"}
			if tc.template != nil {
				if err := f.site.SaveItem(ctx, erpnext.Item{Code: tmpl, Group: "Products", StockUOM: "Nos", HasVariants: true}); err != nil {
					t.Fatal(err)
				}
				if tc.tmplUOMs != nil {
					setSalesUOM(t, f, tmpl, "", tc.tmplUOMs...)
				}
				addItemPrices(t, f, tmpl, tc.template...)
				item.VariantOf = tmpl
			}
			if err := f.site.SaveItem(ctx, item); err != nil {
				t.Fatal(err)
			}
			if tc.salesUOM != "" {
				setSalesUOM(t, f, code, tc.salesUOM, tc.factors...)
			}
			addItemPrices(t, f, code, tc.rows...)
			det := f.det
			if tc.sel.PriceLists != nil || tc.sel.CustomerPrices {
				var err error
				if det, err = detector.New(ctx, f.db, detector.Config{Selection: tc.sel}); err != nil {
					t.Fatal(err)
				}
			}
			want := expandDays(t, f, tc.want, tmpl)
			if got := member(t, buildOne(t, det, []string{code}, code), "effective_prices"); got != want {
				t.Errorf("effective_prices = %s\n                want %s", got, want)
			}
			if tc.template == nil {
				return
			}
			// With its template on the same page, whose rows are then its own.
			codes := []string{tmpl, code}
			if got := member(t, buildOne(t, det, codes, code), "effective_prices"); got != want {
				t.Errorf("with the template: effective_prices = %s\n                               want %s", got, want)
			}
			if tc.wantExtra != "" {
				if got, want := member(t, buildOne(t, det, codes, tmpl), "effective_prices"), expandDays(t, f, tc.wantExtra, tmpl); got != want {
					t.Errorf("template's effective_prices = %s\n                        want %s", got, want)
				}
			}
			// The template's rows are not the variant's prices.
			if got := member(t, buildOne(t, det, codes, code), "prices"); strings.Count(got, `"price_list"`) != len(tc.rows) {
				t.Errorf("prices = %s, want the variant's %d rows", got, len(tc.rows))
			}
		})
	}
}

// expandDays replaces "@<n>" (n days from today, as day) and the "T" of
// inherited_from with their values.
func expandDays(t *testing.T, f *fixture, s, tmpl string) string {
	t.Helper()
	s = strings.ReplaceAll(s, `"inherited_from":"T"`, `"inherited_from":"`+tmpl+`"`)
	for {
		i := strings.Index(s, `"@`)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i+1:], '"') + i + 1
		s = s[:i+1] + dayText(t, f, s[i+2:j]) + s[j:]
	}
}

// Item.ChangesOn is the next day on which a selected row's validity window
// opens or closes, or the item reaches its end of life.
func TestBuildChangesOn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	ss := "Standard Selling"
	tests := []struct {
		name     string
		eol      string // "" for none, "keep" for the default ERPNext gives (2099-12-31)
		rows     []testPrice
		template []testPrice
		want     string // a day as testPrice's or a date, "" for none
	}{
		{name: "nothing ahead"},
		{name: "the default end of life", eol: "keep", want: "2099-12-31"},
		{name: "end of life tomorrow", eol: "+1", want: "+1"},
		{name: "end of life past", eol: "-1"},
		{name: "a row opens", rows: []testPrice{{list: ss, rate: "1", from: "+5"}, {list: ss, rate: "2", from: "-5"}}, want: "+5"},
		{name: "a row closes: the day after valid_upto", rows: []testPrice{{list: ss, rate: "1", from: "+5"}, {list: ss, rate: "2", upto: "+2"}}, want: "+3"},
		{name: "valid_upto today: tomorrow", rows: []testPrice{{list: ss, rate: "2", upto: "0"}}, want: "+1"},
		{name: "closed yesterday", rows: []testPrice{{list: ss, rate: "2", from: "-9", upto: "-1"}}},
		{name: "rows before the end of life", eol: "+7", rows: []testPrice{{list: ss, rate: "1", from: "+3"}}, want: "+3"},
		{name: "unselected rows do not count", rows: []testPrice{{list: "Standard Buying", rate: "1", from: "+1"}, {list: ss, rate: "1", supplier: "S", from: "+2"}}},
		{name: "a variant's template's rows", rows: []testPrice{{list: ss, rate: "1", upto: "+9"}},
			template: []testPrice{{list: ss, rate: "2", from: "+4"}}, want: "+4"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, tmpl := fmt.Sprintf("CHG-%02d", i), fmt.Sprintf("CHG-%02d-T", i)
			item := erpnext.Item{Code: code, Group: "Products", StockUOM: "Nos"}
			if tc.template != nil {
				if err := f.site.SaveItem(ctx, erpnext.Item{Code: tmpl, Group: "Products", StockUOM: "Nos", HasVariants: true}); err != nil {
					t.Fatal(err)
				}
				addItemPrices(t, f, tmpl, tc.template...)
				item.VariantOf = tmpl
			}
			if err := f.site.SaveItem(ctx, item); err != nil {
				t.Fatal(err)
			}
			if tc.eol != "keep" {
				setEndOfLife(t, f, code, tc.eol)
			}
			addItemPrices(t, f, code, tc.rows...)
			want := tc.want
			if strings.HasPrefix(want, "+") || strings.HasPrefix(want, "-") {
				want = dayText(t, f, tc.want)
			}
			for _, codes := range [][]string{{code}, {code, tmpl}} {
				if got := buildOne(t, f.det, codes, code).ChangesOn; got != want {
					t.Errorf("Build(%q): ChangesOn = %q, want %q", codes, got, want)
				}
			}
		})
	}
}

// Rows whose item_code names the item or the template in another spelling
// (the collation matches "case-1" with CASE-1) are quoted as the database
// matches them.
func TestBuildEffectivePricesOtherSpellings(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	for _, it := range []erpnext.Item{
		{Code: "CASE-1", Group: "Products", StockUOM: "Nos"},
		{Code: "TPL-1", Group: "Products", StockUOM: "Nos", HasVariants: true},
		{Code: "CASE-V", Group: "Products", StockUOM: "Nos", VariantOf: "TPL-1"},
	} {
		if err := f.site.SaveItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	addItemPrices(t, f, "CASE-1", testPrice{list: "Standard Selling", rate: "3"})
	addItemPrices(t, f, "TPL-1", testPrice{list: "Standard Selling", rate: "4"})
	if _, err := f.db.Exec("UPDATE `tabItem Price` SET item_code = LOWER(item_code)"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ code, want string }{
		{"CASE-1", `{"Standard Selling":{"currency":"KES","inherited_from":null,"rate":3,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
		{"CASE-V", `{"Standard Selling":{"currency":"KES","inherited_from":"TPL-1","rate":4,"uom":"Nos","valid_from":null,"valid_upto":null}}`},
	} {
		for _, codes := range [][]string{{tc.code}, {"CASE-1", "CASE-V", "TPL-1"}} {
			if got := member(t, buildOne(t, f.det, codes, tc.code), "effective_prices"); got != tc.want {
				t.Errorf("Build(%q): %s: effective_prices = %s, want %s", codes, tc.code, got, tc.want)
			}
		}
	}
}
