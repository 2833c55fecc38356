package signer

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestFormatNumber(t *testing.T) {
	point1, point2 := 0.1, 0.2 // variables: constant arithmetic would be exact
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1, "-1"},
		{1e21, "1e+21"},
		{1e20, "100000000000000000000"},
		{123456789012345680000, "123456789012345680000"},
		{1e-7, "1e-7"},
		{0.000001, "0.000001"},
		{0.0000015, "0.0000015"},
		{123e-20, "1.23e-18"},
		{5e-324, "5e-324"},
		{-5e-324, "-5e-324"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{333333333.33333329, "333333333.3333333"},
		{4.5, "4.5"},
		{point1 + point2, "0.30000000000000004"},
		{1 << 53, "9007199254740992"},
		{1<<53 + 2, "9007199254740994"},
		{-(1 << 53), "-9007199254740992"},
		{1 << 60, "1152921504606847000"},
		{1e30, "1e+30"},
		{-1.5e-10, "-1.5e-10"},
		{2e-3, "0.002"},
		{19.99, "19.99"},
		{100, "100"},
		{0.5, "0.5"},
		{1e23, "1e+23"},
		{math.Nextafter(1e23, 0), "9.999999999999997e+22"},
		{math.Nextafter(1e21, 0), "999999999999999900000"},
		{math.Nextafter(1e-6, 0), "9.999999999999997e-7"},
	}
	for _, tc := range tests {
		got, err := FormatNumber(tc.in)
		if err != nil {
			t.Errorf("FormatNumber(%v): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("FormatNumber(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatNumberErrors(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got, err := FormatNumber(f); err == nil {
			t.Errorf("FormatNumber(%v) = %q, want an error", f, got)
		}
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		in    string
		want  any
		exact bool
	}{
		{"19.990000000", json.Number("19.99"), true},
		{"19.99", json.Number("19.99"), true},
		{"100.000000000", json.Number("100"), true},
		{"-0.000000000", json.Number("0"), true},
		{"0.000000000", json.Number("0"), true},
		{"0", json.Number("0"), true},
		{"-0.500000000", json.Number("-0.5"), true},
		{"0.100000000", json.Number("0.1"), true},
		{"1234567.891000000", json.Number("1234567.891"), true},
		{"-12.500000000", json.Number("-12.5"), true},
		{"0.000000001", json.Number("1e-9"), true},
		{"0.000001000", json.Number("0.000001"), true},
		{"9007199254740992", json.Number("9007199254740992"), true},
		{"-9007199254740992.000", json.Number("-9007199254740992"), true},
		{"100000000000000000000000", json.Number("1e+23"), true},
		{"1000000000000000000000.0", json.Number("1e+21"), true},
		{"007.50", json.Number("7.5"), true},
		{"+1.5", json.Number("1.5"), true},
		{"5.", json.Number("5"), true},
		{".5", json.Number("0.5"), true},
		{"123456789012.123456789", "123456789012.123456789", false},
		{"0.1234567890123456789", "0.1234567890123456789", false},
		{"99999999999.999999999", "99999999999.999999999", false},
		{"9007199254740993", "9007199254740993", false},
		{"-000123456789012.1234567890", "-123456789012.123456789", false},
		{"0.30000000000000004", json.Number("0.30000000000000004"), true},
		{"0.30000000000000000001", "0.30000000000000000001", false},
		{"1" + strings.Repeat("0", 400), "1" + strings.Repeat("0", 400), false},
		{"0." + strings.Repeat("0", 400) + "1", "0." + strings.Repeat("0", 400) + "1", false},
	}
	for _, tc := range tests {
		got, exact, err := Decimal(tc.in)
		if err != nil {
			t.Errorf("Decimal(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want || exact != tc.exact {
			t.Errorf("Decimal(%q) = %#v, %v; want %#v, %v", tc.in, got, exact, tc.want, tc.exact)
		}
		// Whatever Decimal returns must canonicalise, and an exact value must come out unchanged.
		b, err := Canonical(got)
		if err != nil {
			t.Errorf("Canonical(Decimal(%q)): %v", tc.in, err)
		} else if n, ok := got.(json.Number); ok && string(b) != string(n) {
			t.Errorf("Canonical(Decimal(%q)) = %s, want %s", tc.in, b, n)
		}
	}
}

func TestDecimalErrors(t *testing.T) {
	for _, in := range []string{"", "abc", "1e5", "1.2.3", " 1", "1 ", "-", "+", ".", "-.", "--1", "+-1", "1,5", "0x10", "1_000", "١"} {
		got, _, err := Decimal(in)
		if err == nil {
			t.Errorf("Decimal(%q) = %#v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) && in != "١" {
			t.Errorf("Decimal(%q) error %q does not name the value", in, err)
		}
	}
}

func TestFloat(t *testing.T) {
	tests := []struct {
		in    string
		want  any
		exact bool
	}{
		// strconv's shortest 'g' form, as database/sql writes a double read as a float64.
		{"1e+20", json.Number("100000000000000000000"), true},
		{"1e+21", json.Number("1e+21"), true},
		{"-2.5e-07", json.Number("-2.5e-7"), true},
		{"1e+06", json.Number("1000000"), true},
		{"1.234567e+06", json.Number("1234567"), true},
		{"1.2345678901234568e+17", json.Number("123456789012345680"), true},
		{"5e-324", json.Number("5e-324"), true},
		{"1.7976931348623157e+308", json.Number("1.7976931348623157e+308"), true},
		{"9.007199254740992e+15", json.Number("9007199254740992"), true},
		{"0.30000000000000004", json.Number("0.30000000000000004"), true},
		// MariaDB's own text, and other spellings of the same values.
		{"1e20", json.Number("100000000000000000000"), true},
		{"-2.5E-7", json.Number("-2.5e-7"), true},
		{"+1.5e0", json.Number("1.5"), true},
		{"15e-1", json.Number("1.5"), true},
		{"0.00015e4", json.Number("1.5"), true},
		{".5e1", json.Number("5"), true},
		{"5.e-1", json.Number("0.5"), true},
		{"1e-0000007", json.Number("1e-7"), true},
		{"-0e0", json.Number("0"), true},
		{"0.000e+999999999", json.Number("0"), true},
		// Without an exponent: what Decimal gives.
		{"0.1", json.Number("0.1"), true},
		{"-0", json.Number("0"), true},
		{"100", json.Number("100"), true},
		{"9007199254740993", "9007199254740993", false},
		{"123456789012.123456789", "123456789012.123456789", false},
		// More digits than a double carries, or beyond its range: the exact value as a string.
		{"1.000000000000000000001e5", "100000.0000000000000001", false},
		{"9007199254740993e0", "9007199254740993", false},
		{"1.00000000000000000001e+25", "1.00000000000000000001e+25", false},
		{"1e400", "1e+400", false},
		{"-1e400", "-1e+400", false},
		{"1e-400", "1e-400", false},
		{"-12345678901234567890123e-30", "-1.2345678901234567890123e-8", false},
		{"12345678901234567890123e-25", "0.0012345678901234567890123", false},
		{"12345678901234567890123e-27", "0.000012345678901234567890123", false},
		{"12345678901234567890123e-28", "0.0000012345678901234567890123", false},
		{"12345678901234567890123e-29", "1.2345678901234567890123e-7", false},
		{"12345678901234567890123e-2", "123456789012345678901.23", false},
		{"1.00000000000000000000001e20", "100000000000000000000.001", false},
		{"1.00000000000000000000001e21", "1.00000000000000000000001e+21", false},
		{"2e999999999", "2e+999999999", false},
		{"0.02e-999999999", "2e-1000000001", false},
	}
	for _, tc := range tests {
		got, exact, err := Float(tc.in)
		if err != nil {
			t.Errorf("Float(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want || exact != tc.exact {
			t.Errorf("Float(%q) = %#v, %v; want %#v, %v", tc.in, got, exact, tc.want, tc.exact)
		}
		b, err := Canonical(got)
		if err != nil {
			t.Errorf("Canonical(Float(%q)): %v", tc.in, err)
		} else if n, ok := got.(json.Number); ok && string(b) != string(n) {
			t.Errorf("Canonical(Float(%q)) = %s, want %s", tc.in, b, n)
		}
	}
	// Every double's shortest 'g' and 'e' forms are exact, and come back as the double.
	for _, f := range []float64{1, -1, 0.1, 1e6, 1e-5, 123456.789, 1e300, -1e-300, 5e-324, math.MaxFloat64, 1 << 60, math.Pi * 1e15} {
		for _, format := range []byte{'g', 'e'} {
			in := strconv.FormatFloat(f, format, -1, 64)
			got, exact, err := Float(in)
			want, _ := FormatNumber(f)
			if err != nil || !exact || got != json.Number(want) {
				t.Errorf("Float(%q) = %#v, %v, %v; want json.Number(%q), true", in, got, exact, err, want)
			}
		}
	}
}

func TestFloatErrors(t *testing.T) {
	for _, in := range []string{"", "NaN", "nan", "+Inf", "-Inf", "inf", "Infinity", "-infinity",
		"e5", "1e", "1e+", "1e-", "1e5.0", "1e5e5", "1ee5", ".e5", "1e 5", " 1e5", "1e5 ", "0x1p-2", "1_0e5",
		"1e1000000000", "1e-1000000000", "1e+00000000001000000000", "abc", "1.2.3", "--1e5"} {
		got, _, err := Float(in)
		if err == nil {
			t.Errorf("Float(%q) = %#v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(in)) {
			t.Errorf("Float(%q) error %q does not name the value", in, err)
		}
	}
}
