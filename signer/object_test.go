package signer

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
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
			{"", "first"}, {"~", "last"}, {"j", "middle"}, {"\U0001F600", "supplementary"}, {"\uffff", "bmp"},
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
			}
			check("new")
			for _, s := range tc.set {
				if err := o.Set(s.key, s.val); err != nil {
					t.Fatalf("Set(%q): %v", s.key, err)
				}
				want[s.key] = s.val
				check("after Set(" + s.key + ")")
			}
		})
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
