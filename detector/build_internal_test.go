package detector

import (
	"database/sql"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// ratSum is how stock_total was summed before decimalSum: big.Rat, skipping
// texts it cannot parse, written with FloatString(9).
func ratSum(vals []string) string {
	var total big.Rat
	for _, v := range vals {
		var r big.Rat
		if _, ok := r.SetString(v); ok {
			total.Add(&total, &r)
		}
	}
	return total.FloatString(9)
}

func decimalSumText(vals []string) string {
	var s decimalSum
	for _, v := range vals {
		s.add(v)
	}
	return s.text()
}

func TestDecimalSumMatchesBigRat(t *testing.T) {
	tests := [][]string{
		nil,
		{"0.000000000"},
		{"10.500000000", "0.100000000"},
		{"-0.000000001"},
		{"-0.500000000", "0.200000000"},
		{"-101.250000000", "-0.750000000", "2.000000000"},
		{"999999999.999999999", "0.000000001"},
		{strings.Repeat("9", 9) + ".999999999", "999999999.999999999", "999999999.999999999", "999999999.999999999",
			"999999999.999999999", "999999999.999999999", "999999999.999999999", "999999999.999999999",
			"999999999.999999999", "999999999.999999999"}, // the sum leaves int64
		{"-999999999.999999999", "-999999999.999999999", "-999999999.999999999", "-999999999.999999999",
			"-999999999.999999999", "-999999999.999999999", "-999999999.999999999", "-999999999.999999999",
			"-999999999.999999999", "-999999999.999999999"},
		{"99999999999.999999999", "1.000000000"}, // 12 integer digits: big.Rat from the start
		{"1.5", "2.25", "7"},
		{"007.500000000", "-0", "-0.0"},
		{"0.1234567891", "1.000000000"}, // 10 decimals
		{"", "abc", "1e3", "+5", ".5", "5.", "1/3", "0x10", "1_000", "--1", "1.2.3", " 1", "2.000000000"},
		{"5.000000000", "1/3", "2.000000000"}, // big.Rat parses a fraction: 1/3 rounds in FloatString
	}
	for _, vals := range tests {
		if got, want := decimalSumText(vals), ratSum(vals); got != want {
			t.Errorf("sum of %q = %s, want %s", vals, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		vals := make([]string, r.IntN(5))
		for i := range vals {
			whole := fmt.Sprint(r.Int64N([]int64{10, 1000, 1e9, 1e12}[r.IntN(4)]))
			frac := fmt.Sprintf("%09d", r.IntN(1e9))[:r.IntN(10)]
			v := whole
			if frac != "" || r.IntN(2) == 0 {
				v += "." + frac
			}
			if r.IntN(3) == 0 {
				v = "-" + v
			}
			vals[i] = v
		}
		if got, want := decimalSumText(vals), ratSum(vals); got != want {
			t.Fatalf("sum of %q = %s, want %s", vals, got, want)
		}
	}
}

// oldRFC3339 is rfc3339 as it was before its fast path.
func oldRFC3339(loc *time.Location, v sql.NullString) any {
	if !v.Valid || v.String == "" || strings.HasPrefix(v.String, "0000-00-00") {
		return nil
	}
	t, err := time.ParseInLocation(ModifiedLayout, normModified(v.String), loc)
	if err != nil {
		return v.String
	}
	return t.Format("2006-01-02T15:04:05.999999Z07:00")
}

func TestRFC3339MatchesTimeFormat(t *testing.T) {
	inputs := []string{
		"", "0000-00-00 00:00:00", "0000-01-01 00:00:00.000000", "2024-01-01 00:00:00", "2024-01-01 00:00:00.5",
		"2024-06-30 12:34:56.000001", "2024-06-30 12:34:56.120000", "2024-12-31 23:59:59.999999",
		"2024-02-29 10:00:00.000000", "2023-02-29 10:00:00.000000", "2024-04-31 10:00:00.000000", "2024-13-01 10:00:00.000000",
		"2024-00-10 10:00:00.000000", "2024-01-00 10:00:00.000000", "2024-01-01 24:00:00.000000", "2024-01-01 23:60:00.000000",
		"2024-01-01 23:59:60.000000", "2024-01-01T10:00:00.000000", "not a time",
		"2024-03-10 02:30:00.000000", "2024-11-03 01:30:00.000000", // New York: the gap and the repeated hour
		"2024-03-31 01:30:00.000000", "2024-10-27 01:30:00.000000", // London
		"2024-04-07 01:45:00.000000", "2024-10-06 02:15:00.000000", // Lord Howe: half-hour shifts
		"1960-06-01 12:00:00.000000", "1971-12-31 23:59:59.999999", // Monrovia: an offset with seconds
		"1900-01-01 00:00:00.000000", "2100-07-01 00:00:00.000000",
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		ts := time.Unix(r.Int64N(6_000_000_000)-2_000_000_000, 0).UTC()
		inputs = append(inputs, ts.Format("2006-01-02 15:04:05")+fmt.Sprintf(".%06d", r.IntN(1_000_000)))
	}
	for _, zone := range []string{"UTC", "Asia/Kolkata", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Africa/Monrovia", "Pacific/Kiritimati"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		d := &Detector{loc: loc}
		for _, in := range inputs {
			v := sql.NullString{String: in, Valid: in != ""}
			if got, want := d.rfc3339(v), oldRFC3339(loc, v); got != want {
				t.Errorf("%s: rfc3339(%q) = %v, want %v", zone, in, got, want)
			}
		}
	}
}
