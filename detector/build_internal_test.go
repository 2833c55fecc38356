package detector

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/signer"
)

// ratSum is how stock_total was summed before decimalSum: big.Rat, skipping
// texts it cannot parse, written with FloatString(9); but also skipping what
// is no decimal as a DECIMAL column reads (signer.Decimal's error), such as a
// fraction or an exponent.
func ratSum(vals []string) string {
	var total big.Rat
	for _, v := range vals {
		if _, _, err := signer.Decimal(v); err != nil {
			continue
		}
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
		{"5.000000000", "1/3", "2.000000000"},  // big.Rat parses a fraction, which no DECIMAL reads as
		{"9p9904000", "1e999999", "0x10", "1"}, // nor exponents (binary ones too), nor hexadecimal
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

// oldRFC3339 is rfc3339 as it was before its fast path, except that text
// naming no time is null (it was sent as read, which is no RFC 3339 time).
func oldRFC3339(loc *time.Location, v sql.NullString) any {
	if !v.Valid || v.String == "" || strings.HasPrefix(v.String, "0000-00-00") {
		return nil
	}
	t, err := time.ParseInLocation(ModifiedLayout, normModified(v.String), loc)
	if err != nil {
		return nil
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

// extraValue encodes every value exactly, or as null where no JSON value of
// its kind carries it, and makes a problem only of numeric text that no JSON
// value carries.
func TestExtraValue(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	d := &Detector{loc: loc, logger: slog.New(slog.DiscardHandler)}
	tests := []struct {
		dataType, columnType, in string
		want                     string // canonical JSON, or "problem: <reason prefix>"
	}{
		{"decimal", "decimal(21,9)", "19.990000000", `19.99`},
		{"decimal", "decimal(21,9)", "99999999999.999999999", `"99999999999.999999999"`},
		{"decimal", "decimal(21,9)", "-0.000000000", `0`},
		{"decimal", "decimal(21,9)", "1e5", "problem: not a decimal number"},
		{"double", "double", "1e+20", `100000000000000000000`},
		{"double", "double", "1e20", `100000000000000000000`},
		{"double", "double", "-2.5e-07", `-2.5e-7`},
		{"double", "double", "1e+06", `1000000`},
		{"double", "double", "1e+21", `1e+21`},
		{"double", "double", "-0", `0`},
		{"double", "double", "0.30000000000000004", `0.30000000000000004`},
		{"double", "double", "1e400", `"1e+400"`},
		{"double", "double", "NaN", "problem: not a finite number"},
		{"double", "double", "-Inf", "problem: not a finite number"},
		{"double", "double", "1e1000000000", "problem: not a number"},
		{"double", "double", "", "problem: not a number"},
		{"float", "float", "1.23457e+17", `123457000000000000`},
		{"float", "float", "0.1", `0.1`},
		{"bigint", "bigint(20) unsigned", "18446744073709551615", `"18446744073709551615"`},
		{"bigint", "bigint(20) unsigned", "9223372036854775808", `"9223372036854775808"`},
		{"bigint", "bigint(20)", "-9223372036854775808", `"-9223372036854775808"`},
		{"bigint", "bigint(20)", "9007199254740993", `"9007199254740993"`},
		{"bigint", "bigint(20)", "-9007199254740993", `"-9007199254740993"`},
		{"bigint", "bigint(20)", "9007199254740992", `9007199254740992`},
		{"bigint", "bigint(20)", "-9007199254740992", `-9007199254740992`},
		{"int", "int(5) unsigned zerofill", "00007", `7`},
		{"int", "int(11)", "-0", `0`},
		{"int", "int(11)", "+12", `12`},
		{"int", "int(11)", "12abc", "problem: not an integer"},
		{"int", "int(11)", "1.5", "problem: not an integer"},
		{"int", "int(1)", "1", `true`},
		{"tinyint", "tinyint(4)", "0", `false`},
		{"date", "date", "2024-05-01", `"2024-05-01"`},
		{"date", "date", "2024-02-29", `"2024-02-29"`},
		{"date", "date", "0000-00-00", `null`},
		{"date", "date", "2024-00-10", `null`},
		{"date", "date", "2024-01-00", `null`},
		{"date", "date", "2024-02-30", `null`},
		{"date", "date", "2023-02-29", `null`},
		{"date", "date", "2024-13-01", `null`},
		{"date", "date", "not a date", `null`},
		{"datetime", "datetime(6)", "2024-05-01 10:00:00.000000", `"2024-05-01T10:00:00+05:30"`},
		{"datetime", "datetime", "2024-05-01 10:00:00", `"2024-05-01T10:00:00+05:30"`},
		{"datetime", "datetime", "0000-00-00 00:00:00", `null`},
		{"datetime", "datetime", "2024-01-00 10:00:00", `null`},
		{"timestamp", "timestamp", "2024-02-30 10:00:00", `null`},
		{"varchar", "varchar(140)", "caf\xed\xa0\x80", "\"caf\ufffd\ufffd\ufffd\""},
		{"longblob", "longblob", "\xffA", "\"\ufffdA\""},
		{"varchar", "varchar(140)", "", `null`},
	}
	for _, tc := range tests {
		p := d.getPage()
		f := extraField{name: "x", dataType: tc.dataType, columnType: tc.columnType}
		d.extra = []extraField{f}
		row := make([]sql.NullString, len(itemColumns())+1)
		row[0] = sql.NullString{String: "ITEM", Valid: true}
		row[len(row)-1] = sql.NullString{String: tc.in, Valid: true}
		p.addItem(row)
		var got string
		if pr := p.items[0].problem; pr != nil {
			got = "problem: " + pr.Reason
			if pr.Column != "tabItem.x" || pr.Value != strconv.Quote(tc.in) {
				t.Errorf("%s %q: problem %#v", tc.columnType, tc.in, pr)
			}
		} else {
			m := p.members[p.items[0].last-1]
			got = string(p.arena[m.start:m.end])
		}
		if !strings.HasPrefix(got, tc.want) || (!strings.HasPrefix(tc.want, "problem: ") && got != tc.want) {
			t.Errorf("%s %q = %s, want %s", tc.columnType, tc.in, got, tc.want)
		}
		d.putPage(p)
	}
}

func TestToValidUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"日本 🎉", "日本 🎉"},
		{"caf\xed\xa0\x80", "caf\ufffd\ufffd\ufffd"}, // a UTF-16 surrogate, as MariaDB's utf8mb4 stores it
		{"\xff\xfeA", "\ufffd\ufffdA"},
		{"\xe6\x97", "\ufffd\ufffd"}, // a character cut short
		{"\xc0\xaf", "\ufffd\ufffd"}, // overlong
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"a\ufffdb", "a\ufffdb"},
	}
	for _, tc := range tests {
		if got := toValidUTF8(tc.in); got != tc.want {
			t.Errorf("toValidUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// As encoding/json replaces them.
		b, _ := json.Marshal(tc.in)
		var viaJSON string
		if err := json.Unmarshal(b, &viaJSON); err != nil || viaJSON != tc.want {
			t.Errorf("encoding/json gives %q for %q, want %q", viaJSON, tc.in, tc.want)
		}
	}
}

func TestQuoteValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"NaN", `"NaN"`},
		{"LAMP-\xed\xa0\x80", `"LAMP-\xed\xa0\x80"`},
		{strings.Repeat("a", 64), `"` + strings.Repeat("a", 64) + `"`},
		{strings.Repeat("a", 65), `"` + strings.Repeat("a", 64) + `"…`},
		{strings.Repeat("a", 62) + "日本", `"` + strings.Repeat("a", 62) + `"…`}, // not cut inside 日
		{strings.Repeat("\xff", 100), strconv.Quote(strings.Repeat("\xff", 64)) + "…"},
	}
	for _, tc := range tests {
		if got := quoteValue(tc.in); got != tc.want {
			t.Errorf("quoteValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
