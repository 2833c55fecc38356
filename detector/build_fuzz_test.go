package detector

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/orderweave/erpsync/signer"
)

// fuzzExtra are the extra fields FuzzBuildItem's items carry: one of each
// column type extraValue tells apart, as information_schema names them.
func fuzzExtra() []extraField {
	return []extraField{
		{"x_decimal", "decimal", "decimal(21,9)"},
		{"x_double", "double", "double"},
		{"x_float", "float", "float"},
		{"x_bigint", "bigint", "bigint(20) unsigned"},
		{"x_int", "int", "int(11)"},
		{"x_check", "int", "int(1)"},
		{"x_tinyint", "tinyint", "tinyint(4)"},
		{"x_date", "date", "date"},
		{"x_datetime", "datetime", "datetime(6)"},
		{"x_text", "varchar", "varchar(140)"},
		{"x_blob", "longblob", "longblob"},
	}
}

// fuzzColumns are the columns whose values can make a FuzzBuildItem item a
// problem: numeric text that no JSON value carries. Text and dates never do
// (beyond tabItem.name).
func fuzzColumns() []string {
	return []string{"tabItem.x_decimal", "tabItem.x_double", "tabItem.x_float", "tabItem.x_bigint", "tabItem.x_int",
		"tabItem Price.price_list_rate", "tabBin.actual_qty", "tabBin.projected_qty", "tabBin.reserved_qty"}
}

func null(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }

// fuzzRow is a tabItem row in readItems' column order, its extra fields as
// fuzzExtra lists them.
func fuzzRow(code string, v fuzzValues) []sql.NullString {
	return []sql.NullString{
		null(code), null(v.text), null("Products"), {}, null(v.text), null("Nos"),
		null(v.integer), null("1"), null(v.double), null("0"), null(v.text), null(v.date), null(v.text), null(v.datetime),
		// extra fields
		null(v.decimal), null(v.double), null(v.double), null(v.integer), null(v.integer), null(v.integer), null(v.integer),
		null(v.date), null(v.datetime), null(v.text), null(v.text),
	}
}

// fuzzValues are the values of one FuzzBuildItem input, by column type.
type fuzzValues struct{ decimal, double, integer, date, datetime, text string }

// buildFuzzPage builds a page of four items as buildPage does, from rows
// instead of queries: "FUZZ-A" holds v in every column of its row, a barcode,
// a price and a Bin; "B"+v.text is a plain item under that code; "C-CLEAN"
// is a plain item with a price and a Bin that never changes; "D-CHILD" is a
// plain item whose price and Bin hold v.double as their DECIMAL text. The
// items come back in Build's order.
func buildFuzzPage(d *Detector, v fuzzValues) ([]Item, error) {
	p := d.getPage()
	defer d.putPage(p)
	plain := fuzzValues{decimal: "12.500000000", double: "0.5", integer: "7", date: "2024-05-01",
		datetime: "2024-05-01 10:00:00.000000", text: "plain"}
	codes := []string{"FUZZ-A", "B" + v.text, "C-CLEAN", "D-CHILD"}
	p.addItem(fuzzRow(codes[0], v))
	p.addItem(fuzzRow(codes[1], plain))
	p.addItem(fuzzRow(codes[2], plain))
	p.addItem(fuzzRow(codes[3], plain))
	// Child rows are read before their item is known when it is spelt
	// otherwise (strays, item -1), then placed: do the same with one of each.
	entries := []entryAt{
		p.barcodeEntry(0, codes[0], null(v.text), null(v.text), sql.NullString{}),
		p.barcodeEntry(-1, codes[0], null("BC-"+v.text), sql.NullString{}, null("Box")),
	}
	entries[1].item = 0
	p.barcodeLists(entries)
	var prices []priceRow
	var bad []badRow
	for _, r := range []struct {
		item int
		code string
		c    priceColumns
	}{
		{0, codes[0], priceColumns{name: "P1", priceList: null(v.text), currency: null("KES"), rate: null(v.decimal),
			from: null(v.date), upto: null(v.datetime), batch: null(v.text)}},
		{-1, codes[0], priceColumns{name: "P2", priceList: null("Wholesale"), rate: null(v.decimal), from: null(v.date)}},
		{2, codes[2], priceColumns{name: "P3", priceList: null("Standard Selling"), currency: null("KES"), rate: null(plain.decimal)}},
		{-1, codes[3], priceColumns{name: "P4", priceList: null("Standard Selling"), rate: null(v.double)}},
	} {
		row, pr := p.priceEntry(r.item, r.code, &r.c)
		if pr != nil {
			bad = append(bad, badRow{len(prices), pr})
		}
		prices = append(prices, row)
	}
	prices[1].item, prices[3].item = 0, 3 // placed
	p.priceLists(prices, bad, true)
	p.stockLists([]binRow{
		{item: 0, warehouse: v.text, qty: [numStockQtys]sql.NullString{null(v.decimal), null(v.decimal), null("1.500000000")}},
		{item: 0, warehouse: "Stores", qty: [numStockQtys]sql.NullString{null(v.decimal), {}, null(v.decimal)}},
		{item: 2, warehouse: "Stores", qty: [numStockQtys]sql.NullString{null("3.000000000"), null("3.000000000"), null("0.000000000")}},
		{item: 3, warehouse: "Stores", qty: [numStockQtys]sql.NullString{null(v.double), null("1"), null(v.double)}},
	})
	slices.Sort(codes)
	return p.result(codes)
}

func fuzzDetector(t testing.TB) *Detector {
	loc, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	return &Detector{cfg: Config{PageSize: 500}, loc: loc, extra: fuzzExtra(), logger: slog.New(slog.DiscardHandler)}
}

// FuzzBuildItem feeds arbitrary column values through the encoders Build
// uses (the same page code, from rows instead of queries): whatever the
// values, nothing panics, every item comes back either with content that is
// canonical JSON signer parses back or with a problem naming a numeric
// column, the neighbours of an odd item are built as ever, and every value
// sent keeps its exact value (or is null where the rules of Build say so).
// `go test` runs the seeds in testdata/fuzz/FuzzBuildItem; run
// `go test -run '^$' -fuzz FuzzBuildItem ./detector` for more.
func FuzzBuildItem(f *testing.F) {
	f.Add("19.990000000", "1e+20", "18446744073709551615", "0000-00-00", "0000-00-00 00:00:00", "caf\xed\xa0\x80")
	d := fuzzDetector(f)
	clean, err := buildFuzzPage(d, fuzzValues{decimal: "1", double: "1", integer: "1", date: "2024-01-01",
		datetime: "2024-01-01 00:00:00", text: "x"})
	if err != nil || clean[1].Code != "C-CLEAN" || clean[1].Content == nil {
		f.Fatalf("clean page: %v, %+v", err, clean)
	}
	wantClean := string(clean[1].Content.Append(nil))
	f.Fuzz(func(t *testing.T, decimal, double, integer, date, datetime, text string) {
		v := fuzzValues{decimal, double, integer, date, datetime, text}
		items, err := buildFuzzPage(d, v)
		if err != nil {
			t.Fatalf("the page failed: %v", err)
		}
		if len(items) != 4 {
			t.Fatalf("%d items, want 4", len(items))
		}
		byCode := map[string]Item{}
		for _, it := range items {
			byCode[it.Code] = it
			if it.Deleted || (it.Content == nil) == (it.Problem == nil) {
				t.Fatalf("item %q: Deleted %v, content %v, problem %v: want content or a problem", it.Code, it.Deleted, it.Content != nil, it.Problem)
			}
			if it.Problem != nil {
				if pr := it.Problem; len(pr.Value) > 4*maxShownValue+2+len("…") || pr.Reason == "" || !strings.HasPrefix(pr.Error(), pr.Column+" ") {
					t.Fatalf("item %q: problem %#v", it.Code, pr)
				}
				continue
			}
			b := it.Content.Append(nil)
			canon, err := signer.CanonicalizeJSON(b)
			if err != nil {
				t.Fatalf("item %q: content is not JSON signer parses: %v\n%q", it.Code, err, b)
			}
			if !bytes.Equal(canon, b) {
				t.Fatalf("item %q: content is not canonical:\n got %q\nwant %q", it.Code, b, canon)
			}
		}
		if c := byCode["C-CLEAN"]; c.Content == nil || string(c.Content.Append(nil)) != wantClean {
			t.Fatalf("the clean neighbour changed: %+v", c)
		}
		b := byCode["B"+text]
		if validCode := utf8.ValidString(text); validCode != (b.Problem == nil) || (!validCode && b.Problem.Column != "tabItem.name") {
			t.Fatalf("item %q: problem %v, want one (tabItem.name) exactly when the code is not UTF-8", b.Code, b.Problem)
		}
		dc := byCode["D-CHILD"]
		if _, _, err := signer.Decimal(double); (err != nil) != (dc.Problem != nil) ||
			(dc.Problem != nil && dc.Problem.Column != "tabItem Price.price_list_rate") {
			t.Fatalf("D-CHILD: problem %v, want one (tabItem Price.price_list_rate) exactly when %q is no decimal", dc.Problem, double)
		}
		a := byCode["FUZZ-A"]
		if a.Problem != nil {
			if !slices.Contains(fuzzColumns(), a.Problem.Column) {
				t.Fatalf("FUZZ-A: problem in column %s, which always encodes: %v", a.Problem.Column, a.Problem)
			}
			return
		}
		checkFuzzItem(t, a, v)
	})
}

// checkFuzzItem checks that each value of a, built from v, keeps v's exact
// value as Build's rules say.
func checkFuzzItem(t *testing.T, a Item, v fuzzValues) {
	dec := json.NewDecoder(bytes.NewReader(a.Content.Append(nil)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	wantText := any(nil)
	if v.text != "" {
		wantText = toValidUTF8(v.text)
	}
	for _, k := range []string{"x_text", "x_blob", "item_name", "description"} {
		if m[k] != wantText {
			t.Errorf("%s = %#v, want %#v", k, m[k], wantText)
		}
	}
	for _, k := range []string{"x_date", "end_of_life"} {
		switch got := m[k].(type) {
		case nil:
			if s, ok := dateOf(null(v.date)); ok {
				t.Errorf("%s = null, want %s", k, s)
			}
		case string:
			if !calendarDate(got) || !strings.HasPrefix(v.date, got) {
				t.Errorf("%s = %q from %q", k, got, v.date)
			}
		default:
			t.Errorf("%s = %#v", k, got)
		}
	}
	for _, k := range []string{"x_datetime", "modified"} {
		switch got := m[k].(type) {
		case nil:
		case string:
			if _, err := time.Parse(time.RFC3339Nano, got); err != nil {
				t.Errorf("%s = %q from %q: %v", k, got, v.datetime, err)
			}
		default:
			t.Errorf("%s = %#v", k, got)
		}
	}
	checkSameNumber(t, "x_decimal", m["x_decimal"], v.decimal, false)
	checkSameNumber(t, "x_double", m["x_double"], v.double, false)
	checkSameNumber(t, "x_bigint", m["x_bigint"], v.integer, true)
	checkSameNumber(t, "x_int", m["x_int"], v.integer, true)
	if prices, _ := m["prices"].([]any); len(prices) != 2 {
		t.Errorf("prices = %#v, want 2", m["prices"])
	} else {
		for _, p := range prices {
			checkSameNumber(t, "prices.rate", p.(map[string]any)["rate"], v.decimal, false)
		}
	}
	if stock, _ := m["stock"].([]any); len(stock) != 2 {
		t.Errorf("stock = %#v, want 2", m["stock"])
	}
}

// checkSameNumber checks that got, the JSON value of the number text in,
// has in's exact value: a number, or a string when a double cannot carry it
// (for an integer: beyond ±2^53). Values with an exponent beyond ±1000 are
// not compared (big.Rat would hold all their digits).
func checkSameNumber(t *testing.T, field string, got any, in string, integer bool) {
	t.Helper()
	if i := strings.IndexAny(in, "eE"); i >= 0 {
		if e, err := strconv.Atoi(in[i+1:]); err != nil || e > 1000 || e < -1000 {
			return
		}
	}
	var want big.Rat
	if _, ok := want.SetString(in); !ok {
		t.Errorf("%s = %#v from %q, which is no number", field, got, in)
		return
	}
	var text string
	switch g := got.(type) {
	case json.Number:
		text = string(g)
		if integer && new(big.Rat).Abs(&want).Cmp(new(big.Rat).SetUint64(1<<53)) > 0 {
			t.Errorf("%s = %s from %q: beyond 2^53, want a string", field, g, in)
		}
	case string:
		text = g
		if integer && new(big.Rat).Abs(&want).Cmp(new(big.Rat).SetUint64(1<<53)) <= 0 {
			t.Errorf("%s = %q from %q: within 2^53, want a number", field, g, in)
		}
	default:
		t.Errorf("%s = %#v from %q", field, got, in)
		return
	}
	var have big.Rat
	if _, ok := have.SetString(text); !ok || have.Cmp(&want) != 0 {
		t.Errorf("%s = %#v from %q: another value", field, got, in)
	}
}
