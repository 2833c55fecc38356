package signer

import (
	"encoding/json"
	"math"
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
