package detector

import (
	"database/sql"
	"testing"

	"github.com/orderweave/erpsync/signer"
)

func TestChooseQuote(t *testing.T) {
	const today = "2026-06-15"
	ns := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	row := func(name string, uom, from, upto sql.NullString) quoteRow {
		return quoteRow{name: name, walkIn: true, uom: uom, from: from, upto: upto, rate: "1"}
	}
	null := sql.NullString{}
	tests := []struct {
		name     string
		rows     []quoteRow
		u, stock string
		want     string // the chosen row's name, "" for none
	}{
		{"none", nil, "Nos", "Nos", ""},
		{"open", []quoteRow{row("a", ns("Nos"), null, null)}, "Nos", "Nos", "a"},
		{"not yet valid", []quoteRow{row("a", ns("Nos"), ns("2026-06-16"), null)}, "Nos", "Nos", ""},
		{"no longer valid", []quoteRow{row("a", ns("Nos"), null, ns("2026-06-14"))}, "Nos", "Nos", ""},
		{"valid from and to today", []quoteRow{row("a", ns("Nos"), ns(today), ns(today))}, "Nos", "Nos", "a"},
		{"zero dates: from passes, upto fails", []quoteRow{row("a", ns("Nos"), ns("0000-00-00"), null), row("b", ns("Nos"), null, ns("0000-00-00"))}, "Nos", "Nos", "a"},
		{"latest valid_from first", []quoteRow{
			row("a", ns("Nos"), ns("2026-01-01"), null), row("b", ns("Nos"), ns("2026-06-01"), null), row("c", ns("Nos"), null, null)}, "Nos", "Nos", "b"},
		{"NULL valid_from last", []quoteRow{row("c", ns("Nos"), null, null), row("a", ns("Nos"), ns("2001-01-01"), null)}, "Nos", "Nos", "a"},
		{"then the UOM before blank before NULL", []quoteRow{
			row("a", null, null, null), row("b", ns(""), null, null), row("c", ns("Box"), null, null)}, "Box", "Nos", "c"},
		{"blank before NULL", []quoteRow{row("a", null, null, null), row("b", ns(""), null, null)}, "Box", "Nos", "b"},
		{"then by name", []quoteRow{row("b", ns("Nos"), null, null), row("a", ns("Nos"), null, null)}, "Nos", "Nos", "a"},
		{"trailing spaces are ignored, as PAD SPACE does", []quoteRow{row("a", ns("Box  "), null, null)}, "Box", "Nos", "a"},
		{"other UOMs are not candidates", []quoteRow{row("a", ns("Kg"), ns("2026-06-01"), null), row("b", ns("Box"), null, null)}, "Box", "Nos", "b"},
		{"stock UOM when there is no sales UOM row", []quoteRow{row("a", ns("Nos"), null, null), row("b", ns("Kg"), null, null)}, "Box", "Nos", "a"},
		{"no stock UOM retry when U is the stock UOM", []quoteRow{row("a", ns("Kg"), null, null)}, "Nos", "Nos", ""},
		{"customers' rows are not quoted", []quoteRow{{name: "a", uom: ns("Nos"), rate: "1"}}, "Nos", "Nos", ""},
		{"packing 6 fails, no retry", []quoteRow{
			{name: "a", walkIn: true, uom: ns("Box"), packing: "6", rate: "1"}, row("b", ns("Nos"), null, null)}, "Box", "Nos", ""},
		{"packing -1 passes", []quoteRow{{name: "a", walkIn: true, uom: ns("Nos"), packing: "-1", rate: "1"}}, "Nos", "Nos", "a"},
		{"packing on the retry is not checked", []quoteRow{{name: "a", walkIn: true, uom: ns("Nos"), packing: "6", rate: "1"}}, "Box", "Nos", "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if i := chooseQuote(tc.rows, today, tc.u, tc.stock); i >= 0 {
				got = tc.rows[i].name
			}
			if got != tc.want {
				t.Errorf("chooseQuote = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestQuotedRate(t *testing.T) {
	ns := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	tests := []struct {
		uom             sql.NullString
		rate, u, factor string
		want            string
		problem         string
	}{
		{ns("Box"), "12.500000000", "Box", "12.000000000", "12.500000000", ""},
		{ns("Nos"), "12.500000000", "Box", "", "12.500000000", ""},
		{ns("Nos"), "12.500000000", "Box", "12.000000000", "150.000000000000000000", ""},
		{sql.NullString{}, "-0.000000001", "Box", "0.5", "-0.0000000005", ""},
		{ns("Box "), "2", "Box", "3", "6", ""}, // Python's == on the texts
		{ns("Nos"), "x", "Box", "2", "", "tabItem Price.price_list_rate"},
		{ns("Nos"), "2", "Box", "1e3", "", "tabUOM Conversion Detail.conversion_factor"},
	}
	for _, tc := range tests {
		r := quoteRow{uom: tc.uom, rate: tc.rate}
		got, pr := quotedRate(&r, tc.u, tc.factor)
		if got != tc.want || (pr == nil) != (tc.problem == "") || (pr != nil && pr.Column != tc.problem) {
			t.Errorf("quotedRate(%v, %s, %s, %s) = %q, %v; want %q, %s", tc.uom, tc.rate, tc.u, tc.factor, got, pr, tc.want, tc.problem)
		}
	}
}

func TestMulDecimal(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"0", "0", "0"},
		{"1.5", "2", "3.0"},
		{"-1.5", "2", "-3.0"},
		{"-1.5", "-.5", "0.75"},
		{"+7.", "3", "21"},
		{"0.000000001", "0.000000001", "0.000000000000000001"},
		{"99999999999.999999999", "99999999999.999999999", "9999999999999999999800.000000000000000001"},
	} {
		if got, ok := mulDecimal(tc.a, tc.b); !ok || got != tc.want {
			t.Errorf("mulDecimal(%s, %s) = %q, %t; want %q", tc.a, tc.b, got, ok, tc.want)
		}
	}
	for _, bad := range [][2]string{{"", "1"}, {"1", "."}, {"1e5", "1"}, {"1", "--1"}, {"0x10", "1"}} {
		if got, ok := mulDecimal(bad[0], bad[1]); ok {
			t.Errorf("mulDecimal(%q, %q) = %q, want not ok", bad[0], bad[1], got)
		}
	}
}

func TestChangesOn(t *testing.T) {
	ns := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	rows := []quoteRow{
		{from: ns("2026-06-10"), upto: ns("2026-06-20")},
		{from: ns("2026-07-01")},
		{from: ns("2024-00-10"), upto: ns("0000-00-00")}, // no calendar days: ignored
		{upto: ns("9999-12-31")},                         // closes after the calendar's end
	}
	for _, tc := range []struct{ today, eol, want string }{
		{"2026-06-15", "", "2026-06-21"},
		{"2026-06-15", "2026-06-18", "2026-06-18"},
		{"2026-06-20", "", "2026-06-21"},
		{"2026-06-21", "", "2026-07-01"},
		{"2026-07-01", "", ""},
		{"2026-07-01", "2026-07-01", ""},
	} {
		if got := changesOn(tc.today, tc.eol, rows[:2], rows[2:]); got != tc.want {
			t.Errorf("changesOn(%s, eol %q) = %q, want %q", tc.today, tc.eol, got, tc.want)
		}
	}
}

func TestCompareJCS(t *testing.T) {
	// RFC 8785 §3.2.3's example order, and the pair where UTF-8 and UTF-16 differ.
	ordered := []string{"\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001F600", "\ufb33", "\ufb33\u0000"}
	for i := range ordered {
		for j := range ordered {
			got := signer.CompareKeys(ordered[i], ordered[j])
			if (i < j && got >= 0) || (i > j && got <= 0) || (i == j && got != 0) {
				t.Errorf("signer.CompareKeys(%q, %q) = %d", ordered[i], ordered[j], got)
			}
		}
	}
}
