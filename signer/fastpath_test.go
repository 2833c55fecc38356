package signer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// The encoder's fast paths must give exactly what its general paths give. These helpers run
// both on one input and report any difference.

// checkString compares the fast string path with the general one (stringFrom with no prefix
// known to be plain), output and error alike, and plainPrefix with a byte-by-byte scan.
func checkString(t *testing.T, s string) {
	t.Helper()
	want := 0
	for want < len(s) && plainASCII(s[want]) {
		want++
	}
	if got := plainPrefix(s); got != want {
		t.Errorf("plainPrefix(%+q) = %d, want %d", s, got, want)
	}
	fast, general := encoder{}, encoder{}
	errFast, errGeneral := fast.string(s), general.stringFrom(s, 0)
	if (errFast == nil) != (errGeneral == nil) || (errFast != nil && errFast.Error() != errGeneral.Error()) {
		t.Errorf("string(%+q): fast error %v, general error %v", s, errFast, errGeneral)
	}
	if errFast == nil && string(fast.buf) != string(general.buf) {
		t.Errorf("string(%+q): fast %s, general %s", s, fast.buf, general.buf)
	}
}

// checkNumber compares Canonical(json.Number(s)), which copies s when isShortestNumber(s), with
// the general path: parse to a double and write it back.
func checkNumber(t *testing.T, s string) {
	t.Helper()
	var e encoder
	if err := e.value(json.Number(s)); isShortestNumber(s) && (err != nil || string(e.buf) != s) {
		t.Errorf("json.Number %q: fast path gives %s, %v", s, e.buf, err)
	}
	var want []byte
	f, err := parseJSONNumber(json.Number(s))
	if err == nil {
		want, err = appendNumber(nil, f)
	}
	if isShortestNumber(s) && (err != nil || string(want) != s) {
		t.Errorf("isShortestNumber(%q) but the general path gives %s, %v", s, want, err)
	}
	got, gotErr := Canonical(json.Number(s))
	if (gotErr == nil) != (err == nil) || (err == nil && string(got) != string(want)) {
		t.Errorf("Canonical(json.Number(%q)) = %s, %v; general path %s, %v", s, got, gotErr, want, err)
	}
}

// checkOrder compares sortOrder and sortMembers with a sort by UTF-16 code units.
func checkOrder(t *testing.T, keys []string) {
	t.Helper()
	want := slices.Clone(keys)
	slices.SortStableFunc(want, func(a, b string) int {
		return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
	})
	ms := make([]member, len(keys))
	order := make([]int32, len(keys))
	for i, k := range keys {
		ms[i], order[i] = member{key: k}, int32(i)
	}
	sortOrder(ms, order)
	got := make([]string, len(order))
	for i, j := range order {
		got[i] = ms[j].key
	}
	if !slices.Equal(got, want) {
		t.Errorf("sortOrder(%+q) = %+q, want %+q", keys, got, want)
	}
	sortMembers(ms)
	for i := range ms {
		got[i] = ms[i].key
	}
	if !slices.Equal(got, want) {
		t.Errorf("sortMembers(%+q) = %+q, want %+q", keys, got, want)
	}
}

func TestStringFastPath(t *testing.T) {
	tests := []string{
		"", "a", "plain ASCII, long enough for several words", "0123456\"", "01234567\\", "01234567890123\x1f",
		"\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", " !#$%&'()*+,-./", "~}|{`_^][@?>=<;:", "tab\there",
		"é", "0123456é", "01234567é", "ok\xffno", "0123456789\xc3", "\xed\xa0\x80", "\u2028\u2029", "😀 emoji",
	}
	// Every byte value at every position of a word, and of the tail after one.
	for c := range 256 {
		for pos := range 17 {
			b := []byte(strings.Repeat("x", 17))
			b[pos] = byte(c)
			tests = append(tests, string(b), string(b[:pos+1]))
		}
	}
	for _, s := range tests {
		checkString(t, s)
	}
}

func TestNumberFastPath(t *testing.T) {
	tests := []struct {
		in      string
		shorter bool // isShortestNumber must accept it
	}{
		{"0", true}, {"7", true}, {"-7", true}, {"1750", true}, {"123456789012345", true}, {"-999999999999999", true},
		{"1999.99", true}, {"-2100.5", true}, {"0.5", true}, {"-0.5", true}, {"0.000001", true}, {"0.000123", true},
		{"12345678901234.5", true}, {"0.123456789012345", true}, {"100.25", true}, {"9007199254.74099", true}, {"0.00000123", true},
		{"-0", false}, {"00", false}, {"01", false}, {"1.0", false}, {"1.50", false}, {"1.", false}, {".5", false},
		{"0.0000001", false}, {"0.000000123", false}, {"9007199254.740993", false}, {"1234567890123456", false}, {"9007199254740993", false},
		{"1234567890123.456", false}, {"0.1234567890123456", false}, {"1e5", false}, {"1E+3", false},
		{"+1", false}, {"", false}, {"-", false}, {"abc", false}, {"1.2.3", false}, {" 1", false}, {"0x10", false},
		{"1e400", false}, {"1e-400", false}, {"0.1000000000000000055511151231257827", false},
	}
	for _, tc := range tests {
		if got := isShortestNumber(tc.in); got != tc.shorter {
			t.Errorf("isShortestNumber(%q) = %v, want %v", tc.in, got, tc.shorter)
		}
		checkNumber(t, tc.in)
	}
	// Decimal's output for DECIMAL(21,9) money and quantities (what the detector sends) takes the
	// fast path, correctly; arbitrary 18-digit values are checked as well.
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	const n = 20000
	for i := range n {
		whole := strconv.FormatInt(r.Int64N(10_000_000), 10)
		frac := strconv.FormatInt(r.Int64N(1000), 10)
		frac = strings.Repeat("0", 3-len(frac)) + frac + "000000"
		if i%2 == 1 {
			frac = strconv.FormatInt(r.Int64N(1_000_000_000), 10)
			frac = strings.Repeat("0", 9-len(frac)) + frac
		}
		d, _, err := Decimal(whole + "." + frac)
		if err != nil {
			t.Fatal(err)
		}
		num, ok := d.(json.Number)
		if !ok {
			continue
		}
		if i%2 == 0 && isShortestNumber(string(num)) {
			fast++
		}
		checkNumber(t, string(num))
	}
	if fast != n/2 {
		t.Errorf("%d of %d money decimals took the fast path, want all", fast, n/2)
	}
	// Shortest forms of random doubles, and random digit strings around the limits.
	for range n {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		checkNumber(t, strconv.FormatFloat(f, 'f', -1, 64))
		checkNumber(t, strconv.FormatFloat(r.NormFloat64()*math.Pow(10, float64(r.IntN(30)-15)), 'f', -1, 64))
		digits := make([]byte, 1+r.IntN(18))
		for i := range digits {
			digits[i] = byte('0' + r.IntN(10))
		}
		s := string(digits)
		if p := r.IntN(len(s) + 1); p < len(s) {
			s = s[:p] + "." + s[p:]
		}
		checkNumber(t, s)
		checkNumber(t, "0.0000"+s)
		checkNumber(t, "-"+s)
	}
}

func TestSortFastPath(t *testing.T) {
	alphabet := []string{"a", "b", "z", "_", "A", "\x7f", "\u00e9", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uefff",
		"\uf000", "\ufb33", "\uffff", "\U00010000", "\U0001F600", "\U0010FFFF"}
	checkOrder(t, nil)
	checkOrder(t, []string{"item_code", "op", "version", "image", "is_stock_item", "variant_of", "valuation"})
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		keys := make([]string, r.IntN(30))
		for i := range keys {
			var sb strings.Builder
			for range r.IntN(4) {
				sb.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			keys[i] = sb.String()
		}
		checkOrder(t, keys)
	}
}

// FuzzFastPaths compares the string, number and key-order fast paths with the general paths on
// arbitrary text.
func FuzzFastPaths(f *testing.F) {
	for _, s := range []string{"", "plain", "1999.99", "0.000001", "-0", "1e5", "é\"\\\x00", "\U0001F600\ue000", "ok\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkString(t, s)
		checkNumber(t, s)
		// Names must be valid UTF-8 (the encoder rejects others), so their order is defined.
		if keys := strings.Split(s, ","); len(keys) < 64 && utf8.ValidString(s) {
			checkOrder(t, keys)
		}
	})
}
