package signer

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
)

// without returns a copy of m without the named members.
func without(m map[string]any, names ...string) map[string]any {
	out := maps.Clone(m)
	for _, n := range names {
		delete(out, n)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out
}

func TestObjectMatchesCanonical(t *testing.T) {
	item := itemEntry()
	tests := []struct {
		name string
		m    map[string]any
		omit []string
		set  []member // applied in order; the result must equal Canonical of the map with them set
	}{
		{"item", item, nil, nil},
		{"item without modified", item, []string{"modified"}, nil},
		{"omit absent and several", item, []string{"nope", "op", "version", "prices"}, nil},
		{"omit everything", map[string]any{"a": 1}, []string{"a"}, nil},
		{"nil map", nil, nil, nil},
		{"empty map", map[string]any{}, []string{"x"}, nil},
		{"nil map with sets", nil, nil, []member{{"version", int64(3)}, {"op", "delete"}, {"item_code", "A"}}},
		{"set new members everywhere", without(item, "op", "version", "item_code"), []string{"modified"}, []member{
			{"item_code", "SKU-9"}, {"modified", "2024"}, {"op", "upsert"}, {"version", int64(1715000000123456)},
			{"", "first"}, {"~", "last"}, {"~", "last again"}, {"j", "middle"}, {"\U0001F600", "supplementary"}, {"\uffff", "bmp"},
		}},
		{"replace members", item, nil, []member{
			{"op", "delete"}, {"prices", []any{}}, {"op", "upsert"}, {"brand", nil}, {"item_code", map[string]any{"b": 1, "a": 2}},
		}},
		{"names in UTF-16 order", map[string]any{"\ue000": 1, "\U00010000": 2, "a": 3, "\u20ac": 4, "\x7f": 5},
			[]string{"a"}, []member{{"\U0001F602", 6}, {"\ufb33", 7}, {"\u00f6", 8}, {"\ue000", 9}}},
		{"names needing escapes", map[string]any{"a\"b": "x\ny", "\\": "\x00", "\t": "\u2028"}, []string{"\\"},
			[]member{{"\x01", "ctl"}, {"\"", "quote"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := NewObject(tc.m, tc.omit...)
			if err != nil {
				t.Fatalf("NewObject: %v", err)
			}
			want := without(tc.m, tc.omit...)
			r := new(Object) // the same members, each set with SetRaw in map order
			for k, v := range want {
				raw, _ := Canonical(v)
				if err := r.SetRaw(k, raw); err != nil {
					t.Fatalf("SetRaw(%q): %v", k, err)
				}
			}
			check := func(step string) {
				t.Helper()
				w, err := Canonical(want)
				if err != nil {
					t.Fatalf("Canonical: %v", err)
				}
				if got := o.Append(nil); !bytes.Equal(got, w) {
					t.Errorf("%s: Append(nil) =\n%s\nwant\n%s", step, got, w)
				}
				prefix := []byte("prefix:")
				if got := o.Append(prefix[:len(prefix):len(prefix)]); !bytes.Equal(got, append(prefix, w...)) {
					t.Errorf("%s: Append(prefix) = %s", step, got)
				}
				if o.Len() != len(want) {
					t.Errorf("%s: Len = %d, want %d", step, o.Len(), len(want))
				}
				if got := r.Append(nil); !bytes.Equal(got, w) {
					t.Errorf("%s: the object built with SetRaw appends\n%s\nwant\n%s", step, got, w)
				}
				for k, v := range want {
					wv, _ := Canonical(v)
					if got, ok := o.Value(k); !ok || !bytes.Equal(got, wv) {
						t.Errorf("%s: Value(%q) = %s, %v; want %s", step, k, got, ok, wv)
					}
					ww, _ := Canonical(without(want, k))
					if got := o.AppendWithout(nil, k); k != "" && !bytes.Equal(got, ww) {
						t.Errorf("%s: AppendWithout(%q) =\n%s\nwant\n%s", step, k, got, ww)
					}
				}
				if got, ok := o.Value("no such member"); ok {
					t.Errorf("%s: Value of a missing member = %s, true", step, got)
				}
				if got := o.AppendWithout(nil, "no such member"); !bytes.Equal(got, w) {
					t.Errorf("%s: AppendWithout(a missing member) = %s", step, got)
				}
			}
			check("new")
			base, _ := NewObject(tc.m, tc.omit...)
			var over Object
			for _, s := range tc.set {
				if err := over.Set(s.key, s.val); err != nil {
					t.Fatalf("Set(%q): %v", s.key, err)
				}
			}
			for _, s := range tc.set {
				if err := o.Set(s.key, s.val); err != nil {
					t.Fatalf("Set(%q): %v", s.key, err)
				}
				raw, _ := Canonical(s.val)
				if err := r.SetRaw(s.key, raw); err != nil {
					t.Fatalf("SetRaw(%q): %v", s.key, err)
				}
				want[s.key] = s.val
				check("after Set(" + s.key + ")")
			}
			w, _ := Canonical(want)
			if got := base.AppendMerged([]byte("x"), &over); !bytes.Equal(got, append([]byte("x"), w...)) {
				t.Errorf("AppendMerged =\n%s\nwant x and\n%s", got, w)
			}
			if got, _ := NewObject(tc.m, tc.omit...); !bytes.Equal(base.Append(nil), got.Append(nil)) {
				t.Errorf("AppendMerged changed the object: %s", base.Append(nil))
			}
		})
	}
}

// SetRaw with an invalid name fails and leaves the object as it was.
func TestObjectSetRawInvalidName(t *testing.T) {
	o, err := NewObject(map[string]any{"b": "two", "d": 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.SetRaw("\xff", []byte("1")); err == nil || !strings.Contains(err.Error(), "member name: string is not valid UTF-8") {
		t.Errorf("SetRaw with an invalid name: %v", err)
	}
	if got, want := string(o.Append(nil)), `{"b":"two","d":4}`; got != want {
		t.Errorf("after a failed SetRaw = %s, want %s", got, want)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "Café <Deluxe> & Co", "tab\tquote\"back\\", "\x00\x1f\u2028", "🎉"} {
		want, _ := Canonical(s)
		got, err := AppendString([]byte("x"), s)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, %v; want x%s", s, got, err, want)
		}
	}
	got, err := AppendString([]byte("x"), "bad \xff")
	if err == nil || string(got) != "x" {
		t.Errorf("AppendString(invalid UTF-8) = %q, %v; want x and an error", got, err)
	}
}

func TestObjectZeroValue(t *testing.T) {
	var o Object
	if got := string(o.Append(nil)); got != "{}" {
		t.Errorf("zero Object = %s, want {}", got)
	}
	if err := o.Set("b", 2); err != nil {
		t.Fatal(err)
	}
	if err := o.Set("a", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if got, want := string(o.Append(nil)), `{"a":["x"],"b":2}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestObjectAppendGrowsOnce checks that Append grows dst once, to the size needed, and not at
// all when it has room.
func TestObjectAppendGrowsOnce(t *testing.T) {
	o, err := NewObject(itemEntry())
	if err != nil {
		t.Fatal(err)
	}
	got := o.Append(nil)
	if want := cap(slices.Grow([]byte(nil), len(got))); cap(got) != want {
		t.Errorf("Append(nil) has len %d, cap %d: want cap %d", len(got), cap(got), want)
	}
	dst := make([]byte, 3, 3+len(got))
	if again := o.Append(dst); &again[0] != &dst[0] || !bytes.Equal(again[3:], got) {
		t.Error("Append into a buffer with room reallocated it or wrote something else")
	}
}

func TestObjectErrors(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	tests := []struct {
		name    string
		m       map[string]any
		omit    []string
		wantSub string
	}{
		{"invalid value", map[string]any{"a": 1, "b": "\xff"}, nil, "at b: string is not valid UTF-8"},
		{"invalid name", map[string]any{"\xfe": 1}, nil, "member name: string is not valid UTF-8"},
		{"first in JCS order", map[string]any{"z": math.NaN(), "y": math.Inf(1)}, nil, "at y: number +Inf"},
		{"omitted bad member is skipped", map[string]any{"y": math.Inf(1), "z": math.NaN()}, []string{"y"}, "at z: number NaN"},
		{"nested path", map[string]any{"prices": []any{map[string]any{"rate": json.Number("x")}}}, nil, "at prices[0].rate: json.Number x"},
		{"cyclic", cyclic, nil, "nesting deeper than 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, want := Canonical(without(tc.m, tc.omit...))
			if want == nil {
				t.Fatal("Canonical did not fail: bad test case")
			}
			o, err := NewObject(tc.m, tc.omit...)
			if err == nil {
				t.Fatalf("NewObject = %s, want an error", o.Append(nil))
			}
			if err.Error() != want.Error() {
				t.Errorf("NewObject error %q, Canonical error %q", err, want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.wantSub)) {
				t.Errorf("error %q does not contain %q", err, tc.wantSub)
			}
		})
	}

	// A failed Set leaves the object as it was; its error is Canonical's for the member.
	o, err := NewObject(map[string]any{"a": 1, "c": 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []member{{"b", math.NaN()}, {"a", "\xff"}, {"\xff", 1}, {"d", cyclic}} {
		err := o.Set(bad.key, bad.val)
		_, want := Canonical(map[string]any{bad.key: bad.val})
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Errorf("Set(%q) error %v, want %v", bad.key, err, want)
		}
		if got := string(o.Append(nil)); got != `{"a":1,"c":3}` {
			t.Errorf("after failed Set(%q): %s", bad.key, got)
		}
	}
}
