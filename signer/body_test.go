package signer

import (
	"bytes"
	"testing"
)

func TestBodyIsCanonicalAndReadsBack(t *testing.T) {
	tests := []struct {
		name    string
		entries []map[string]any
	}{
		{"no items", nil},
		{"one item", []map[string]any{{"item_code": "A-1", "op": "upsert", "version": 7}}},
		{"two items, escapes", []map[string]any{
			{"item_code": "B\u00e9", "op": "delete", "version": 1},
			{"item_code": "q\"uote\n", "op": "upsert", "version": 2, "prices": []any{}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var raw [][]byte
			items := []any{}
			for _, e := range tc.entries {
				b, err := Canonical(e)
				if err != nil {
					t.Fatal(err)
				}
				raw = append(raw, b)
				items = append(items, e)
			}
			id, err := NewDeliveryID()
			if err != nil || len(id) != 32 {
				t.Fatalf("NewDeliveryID = %q, %v", id, err)
			}
			got, err := Body(id, "acme", raw)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Canonical(map[string]any{"delivery_id": id, "items": items, "tenant": "acme"})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Body = %s\nwant  %s", got, want)
			}
			if len(got)-len(bytes.Join(raw, nil)) > BodyOverhead {
				t.Errorf("envelope of %d bytes is over BodyOverhead", len(got)-len(bytes.Join(raw, nil)))
			}
			back, err := BodyItems(got)
			if err != nil || len(back) != len(raw) {
				t.Fatalf("BodyItems: %d entries, %v", len(back), err)
			}
			for i := range raw {
				if !bytes.Equal(back[i], raw[i]) {
					t.Errorf("entry %d = %s, want %s", i, back[i], raw[i])
				}
			}
		})
	}
	if id2, _ := NewDeliveryID(); id2 == "" {
		t.Error("empty delivery id")
	}
}

func TestBodyItemsErrors(t *testing.T) {
	for _, body := range []string{``, `{`, `{"tenant":"x"}`, `[]`} {
		if _, err := BodyItems([]byte(body)); err == nil {
			t.Errorf("BodyItems(%q) accepted", body)
		}
	}
	if _, err := Body("id", "bad\xff", nil); err == nil {
		t.Error("Body accepted a tenant that is not UTF-8")
	}
}
