package signer

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// TestJCSVectors checks every RFC 8785 reference pair in testdata/jcs.
func TestJCSVectors(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "jcs", "input", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no test vectors found in testdata/jcs/input")
	}
	for _, in := range inputs {
		name := filepath.Base(in)
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", "jcs", "output", name))
			if err != nil {
				t.Fatalf("input %s has no output pair: %v", name, err)
			}
			got, err := CanonicalizeJSON(input)
			if err != nil {
				t.Fatalf("CanonicalizeJSON: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("CanonicalizeJSON:\n got %s\nwant %s", got, want)
			}
			// The same input through Canonical: as json.RawMessage, and decoded by encoding/json.
			got, err = Canonical(json.RawMessage(input))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Canonical(RawMessage) = %s, %v; want %s", got, err, want)
			}
			dec := json.NewDecoder(bytes.NewReader(input))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			got, err = Canonical(v)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Canonical(decoded) = %s, %v; want %s", got, err, want)
			}
		})
	}
}

type tagged struct {
	B    int       `json:"b"`
	A    string    `json:"a"`
	HTML string    // encoding/json escapes <>& here; the canonical form must not
	Skip string    `json:"-"`
	When time.Time `json:"when"`
	Opt  *float64  `json:"opt,omitempty"`
}

func TestCanonicalValues(t *testing.T) {
	negZero := math.Copysign(0, -1)
	str := "p"

	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, `null`},
		{"true", true, `true`},
		{"false", false, `false`},
		{"string", "héllo", `"héllo"`},
		{"empty string", "", `""`},
		{"no html escaping", "</script>&<>", `"</script>&<>"`},
		{"line separators raw", "a\u2028b\u2029c", "\"a\u2028b\u2029c\""},
		{"control chars", "\x00\x01\x1f\b\t\n\f\r\"\\\x7f/", `"\u0000\u0001\u001f\b\t\n\f\r\"\\` + "\x7f" + `/"`},
		{"hex lowercase", "\x0b\x1e", `"\u000b\u001e"`},
		{"json.Number 1.0", json.Number("1.0"), `1`},
		{"json.Number exp", json.Number("1E3"), `1000`},
		{"json.Number -0", json.Number("-0"), `0`},
		{"json.Number big", json.Number("1e21"), `1e+21`},
		{"json.Number rounds like JCS", json.Number("333333333.33333329"), `333333333.3333333`},
		{"float64", 19.99, `19.99`},
		{"float64 -0", negZero, `0`},
		{"float64 small", 1e-7, `1e-7`},
		{"float32 shortest", float32(0.1), `0.1`},
		{"float32 int", float32(16777216), `16777216`},
		{"int", 42, `42`},
		{"int8", int8(-128), `-128`},
		{"int16", int16(-300), `-300`},
		{"int32", int32(1 << 30), `1073741824`},
		{"int64 2^53", int64(1 << 53), `9007199254740992`},
		{"int64 -2^53", int64(-1 << 53), `-9007199254740992`},
		{"int64 exact 2^60", int64(1 << 60), `1152921504606847000`},
		{"int64 min", int64(math.MinInt64), `-9223372036854776000`},
		{"uint", uint(7), `7`},
		{"uint8", uint8(255), `255`},
		{"uint16", uint16(65535), `65535`},
		{"uint32", uint32(math.MaxUint32), `4294967295`},
		{"uint64 exact 2^63", uint64(1 << 63), `9223372036854776000`},
		{"uintptr", uintptr(9), `9`},
		{"[]any nil", []any(nil), `null`},
		{"[]any empty", []any{}, `[]`},
		{"[]any mixed", []any{1, "a", nil, true, 2.5, []any{}}, `[1,"a",null,true,2.5,[]]`},
		{"[]string", []string{"b", "a\n"}, `["b","a\n"]`},
		{"[]string nil", []string(nil), `null`},
		{"map nil", map[string]any(nil), `null`},
		{"map empty", map[string]any{}, `{}`},
		{"map sorted", map[string]any{"b": 1, "a": 2, "": 0, "B": 3, "aa": 4}, `{"":0,"B":3,"a":2,"aa":4,"b":1}`},
		{"map[string]string", map[string]string{"z": "1", "y": "<"}, `{"y":"<","z":"1"}`},
		{"map[string]string nil", map[string]string(nil), `null`},
		{"[]map[string]any", []map[string]any{{"b": 1, "a": 0}, nil}, `[{"a":0,"b":1},null]`},
		{"nested", map[string]any{"items": []any{map[string]any{"z": []string{"x"}, "prices": map[string]any{"Std": json.Number("19.990")}}}},
			`{"items":[{"prices":{"Std":19.99},"z":["x"]}]}`},
		{"raw message", json.RawMessage(` {"b": 1, "a": [1.50, "x", {"d":null,"c":false}]} `), `{"a":[1.5,"x",{"c":false,"d":null}],"b":1}`},
		{"raw message nil", json.RawMessage(nil), `null`},
		{"raw message in map", map[string]any{"r": json.RawMessage(`[3.0]`)}, `{"r":[3]}`},
		{"struct fallback", tagged{B: 1, A: "x", HTML: "<&>", Skip: "no", When: time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("EAT", 3*3600))},
			`{"HTML":"<&>","a":"x","b":1,"when":"2024-05-06T07:08:09+03:00"}`},
		{"pointer fallback", &str, `"p"`},
		{"named map fallback", map[string]int{"b": 2, "a": 1}, `{"a":1,"b":2}`},
		{"bytes fallback", []byte("hi"), `"aGk="`},
		{"utf16 key order", map[string]any{
			"\u20ac": 1, "\U0001F602": 2, "\uFB33": 3, "1": 4, "\u0080": 5, "\u00f6": 6, "</script>": 7,
		}, "{\"1\":4,\"</script>\":7,\"\u0080\":5,\"ö\":6,\"€\":1,\"\U0001F602\":2,\"\uFB33\":3}"},
		{"utf16 order map[string]string", map[string]string{"\uE000": "a", "\U00010000": "b", "\uD7FF": "c"},
			"{\"\uD7FF\":\"c\",\"\U00010000\":\"b\",\"\uE000\":\"a\"}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonical(tc.in)
			if err != nil {
				t.Fatalf("Canonical(%#v): %v", tc.in, err)
			}
			if string(got) != tc.want {
				t.Errorf("Canonical(%#v)\n got %s\nwant %s", tc.in, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
}

func TestCanonicalErrors(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic

	tests := []struct {
		name    string
		in      any
		wantSub string // the error message must contain this
	}{
		{"NaN", math.NaN(), "NaN"},
		{"+Inf", math.Inf(1), "Inf"},
		{"float32 -Inf", float32(math.Inf(-1)), "Inf"},
		{"json.Number word", json.Number("abc"), `json.Number abc is not a valid JSON number`},
		{"json.Number empty", json.Number(""), "not a valid JSON number"},
		{"json.Number space", json.Number(" 1"), "not a valid JSON number"},
		{"json.Number leading zero", json.Number("01"), "not a valid JSON number"},
		{"json.Number hex", json.Number("0x10"), "not a valid JSON number"},
		{"json.Number Inf", json.Number("Infinity"), "not a valid JSON number"},
		{"json.Number overflow", json.Number("1e400"), "outside the range"},
		{"json.Number underflow", json.Number("1e-400"), "round to 0"},
		{"invalid utf-8 string", "ok\xffno", "not valid UTF-8 (byte 0xff at offset 2)"},
		{"invalid utf-8 in []string", []string{"a", "\xc3"}, "at [1]: string is not valid UTF-8"},
		{"encoded surrogate", "\xed\xa0\x80", "not valid UTF-8"},
		{"invalid utf-8 key", map[string]any{"\xfe": 1}, "member name: string is not valid UTF-8"},
		{"invalid utf-8 map[string]string", map[string]string{"k": "\x80"}, "at k: string is not valid UTF-8"},
		{"int64 inexact", int64(1<<53 + 1), "9007199254740993 cannot be represented exactly"},
		{"int64 max", int64(math.MaxInt64), "cannot be represented exactly"},
		{"uint64 max", uint64(math.MaxUint64), "cannot be represented exactly"},
		{"duplicate in raw", json.RawMessage(`{"a":1,"b":{"c":1,"c":2}}`), `at b.c: duplicate member name`},
		{"escaped duplicate", json.RawMessage(`{"a":1,"\u0061":2}`), `duplicate member name`},
		{"empty raw", json.RawMessage{}, "json.RawMessage: invalid JSON at byte 0"},
		{"raw trailing", json.RawMessage(`{} {}`), "after the JSON value"},
		{"unsupported type", map[string]any{"c": make(chan int)}, "encoding chan int"},
		{"path", map[string]any{"items": []any{map[string]any{"ok": 1}, map[string]any{"price": math.NaN()}}}, "at items[1].price: number NaN"},
		{"path quoted key", map[string]any{"a b": []any{math.Inf(-1)}}, `at ["a b"][0]: number -Inf`},
		{"cyclic", cyclic, "nesting deeper than 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonical(tc.in)
			if err == nil {
				t.Fatalf("Canonical = %s, want an error containing %q", got, tc.wantSub)
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("error %q does not contain %q", err, tc.wantSub)
			}
			if !strings.HasPrefix(err.Error(), "canonical json: ") {
				t.Errorf("error %q lacks the package context", err)
			}
		})
	}
}

func TestCanonicalizeJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"whitespace", " \t\r\n[ 1 , 2 ]\n", `[1,2]`},
		{"escapes decoded", `"\u0061\/\"\\\b\f\n\r\t"`, `"a/\"\\\b\f\n\r\t"`},
		{"html escapes decoded", `"\u003c\u003e\u0026"`, `"<>&"`},
		{"uppercase hex", `"\u00E9\u001F"`, `"é\u001f"`},
		{"nul", `"\u0000"`, `"\u0000"`},
		{"surrogate pair", `"\ud83d\ude02"`, "\"\U0001F602\""},
		{"line separator", `"\u2028"`, "\"\u2028\""},
		{"raw utf-8", "\"\u20ac\U0001F602\"", "\"\u20ac\U0001F602\""},
		{"numbers", `[-0, 0.0, 1E+2, 1e-7, 123e-20, 5e-324, 1.7976931348623157e308, 0.1, 100000000000000000000000]`,
			`[0,0,100,1e-7,1.23e-18,5e-324,1.7976931348623157e+308,0.1,1e+23]`},
		{"zero with huge exponent", `0e999999`, `0`},
		{"literals", `[true,false,null]`, `[true,false,null]`},
		{"nested sort", `{"b":{"y":1,"x":2},"a":[{"d":1,"c":2}]}`, `{"a":[{"c":2,"d":1}],"b":{"x":2,"y":1}}`},
		{"scalar", `"x"`, `"x"`},
		{"deep", strings.Repeat("[", 100) + strings.Repeat("]", 100), strings.Repeat("[", 100) + strings.Repeat("]", 100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalizeJSON([]byte(tc.in))
			if err != nil {
				t.Fatalf("CanonicalizeJSON(%q): %v", tc.in, err)
			}
			if string(got) != tc.want {
				t.Errorf("CanonicalizeJSON(%q)\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestCanonicalizeJSONErrors(t *testing.T) {
	tests := []struct {
		name, in, wantSub string
	}{
		{"empty", ``, "byte 0: unexpected end of input"},
		{"only space", `  `, "byte 2: unexpected end of input"},
		{"unclosed object", `{`, "want a member name"},
		{"unclosed array", `[1`, "want ',' or ']'"},
		{"trailing comma array", `[1,]`, "want a JSON value"},
		{"trailing comma object", `{"a":1,}`, "want a member name"},
		{"missing colon", `{"a" 1}`, "want ':'"},
		{"non-string key", `{1:1}`, "want a member name"},
		{"leading zero", `01`, "after the JSON value"},
		{"bare dot", `1.`, "malformed number"},
		{"leading dot", `.5`, "want a JSON value"},
		{"plus", `+1`, "want a JSON value"},
		{"exponent without digits", `1e+`, "malformed number"},
		{"minus alone", `-`, "malformed number"},
		{"NaN", `NaN`, "want a JSON value"},
		{"bad literal", `tru`, "want true"},
		{"bad literal 2", `nul`, "want null"},
		{"bad escape", `"\x"`, "invalid escape"},
		{"short unicode escape", `"\u00e"`, `malformed \u escape`},
		{"raw control", "\"a\x01\"", "control character 0x01"},
		{"raw newline", "\"a\n\"", "control character 0x0a"},
		{"raw control after escape", "\"\\n\x1f\"", "control character 0x1f"},
		{"lone high surrogate", `"\ud800"`, "lone high surrogate"},
		{"high surrogate then ascii", `"\ud800\u0041"`, "lone high surrogate"},
		{"lone low surrogate", `"\udc00"`, "lone low surrogate"},
		{"invalid utf-8", "\"ab\xff\"", "byte 3: string is not valid UTF-8"},
		{"invalid utf-8 after escape", "\"\\n\xc3\"", "byte 3: string is not valid UTF-8"},
		{"unterminated string", `"abc`, "unexpected end of input in string"},
		{"trailing data", `{} x`, "byte 3: unexpected character 'x' after the JSON value"},
		{"two values", `1 2`, "after the JSON value"},
		{"duplicate", `{"a":1,"a":2}`, "at a: duplicate member name"},
		{"overflow", `[1e309]`, "outside the range"},
		{"underflow", `[1e-400]`, "round to 0"},
		{"bom", "\ufeff{}", "want a JSON value"},
		{"too deep", strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), "nesting deeper than 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalizeJSON([]byte(tc.in))
			if err == nil {
				t.Fatalf("CanonicalizeJSON(%q) = %s, want an error containing %q", tc.in, got, tc.wantSub)
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("CanonicalizeJSON(%q) error %q does not contain %q", tc.in, err, tc.wantSub)
			}
		})
	}
}

// TestCompareKeysMatchesUTF16 checks CompareKeys against a direct comparison of UTF-16 code units.
func TestCompareKeysMatchesUTF16(t *testing.T) {
	keys := []string{
		"", "a", "b", "aa", "A", "\x7f", "\u0080", "\u00f6", "\u07ff", "\u0800", "\u20ac",
		"\ud7ff", "\ue000", "\uf8ff", "\ufb33", "\uffff", "\U00010000", "\U0001F602", "\U0010FFFF",
		"a\ue000", "a\U00010000", "\ue000a", "\U00010000a", "\U0001F602\U0001F603", "\U0001F603",
	}
	utf16Compare := func(a, b string) int {
		return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
	}
	sign := func(n int) int { return min(max(n, -1), 1) }
	for _, a := range keys {
		for _, b := range keys {
			if got, want := sign(CompareKeys(a, b)), utf16Compare(a, b); got != want {
				t.Errorf("CompareKeys(%+q, %+q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestCanonicalSortsEachObjectIndependently guards the shared key stack used for nested maps.
func TestCanonicalSortsEachObjectIndependently(t *testing.T) {
	inner := func(i int) map[string]any {
		m := map[string]any{}
		for j := range 20 {
			m[string(rune('z'-j))] = i*100 + j
		}
		return m
	}
	outer := map[string]any{}
	for i := range 30 {
		outer[string(rune('A'+i))] = inner(i)
	}
	got, err := Canonical(outer)
	if err != nil {
		t.Fatal(err)
	}
	again, err := CanonicalizeJSON(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, again) {
		t.Fatalf("map output is not canonical:\n%s\n%s", got, again)
	}
	if !strings.HasPrefix(string(got), `{"A":{"g":19,"h":18,`) {
		t.Errorf("unexpected output start: %.40s", got)
	}
}

func FuzzCanonicalIdempotent(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "jcs", "input", "*.json"))
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"delivery_id":"d-1","items":[{"item_code":"A1","op":"upsert","version":1}],"tenant":"acme"}`,
		`[1e21,1e-7,-0,0.1,5e-324,1.7976931348623157e308,9007199254740993]`,
		`{"\ud83d\ude02":1,"\ufb33":2,"\u20ac":3}`,
		`"\u2028\u0000</script>"`,
		`{"a":{"a":{"a":[]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := CanonicalizeJSON(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted input that encoding/json rejects: %q", data)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not valid JSON: %q -> %q", data, out)
		}
		again, err := CanonicalizeJSON(out)
		if err != nil {
			t.Fatalf("output rejected when canonicalised again: %q -> %q: %v", data, out, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", data, out, again)
		}
		// The map/slice encoder must agree with the parsed-tree encoder.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("encoding/json cannot decode accepted input %q: %v", data, err)
		}
		viaMap, err := Canonical(v)
		if err != nil {
			t.Fatalf("Canonical of decoded %q: %v", data, err)
		}
		if !bytes.Equal(viaMap, out) {
			t.Fatalf("Canonical(decoded) = %q, CanonicalizeJSON = %q", viaMap, out)
		}
	})
}
