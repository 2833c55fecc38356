package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestOrderCheck: the fault suite's order check counts exactly the states
// accepted after a newer state of the same item (an earlier `modified`, or
// an upsert after the delete), and flags a line it cannot match with a body.
func TestOrderCheck(t *testing.T) {
	// accept is one delivery: the body the receiver saw, then its lines.
	type accept struct {
		delivery string
		entries  []string // op code version modified ("-" for none)
		skipBody bool     // the body was never seen
	}
	tests := []struct {
		name    string
		accepts []accept
		want    int
	}{
		{"in order", []accept{
			{delivery: "d1", entries: []string{"upsert ITEM-1 1 2026-01-01T10:00:00.000001+05:30", "upsert ITEM-2 1 2026-01-01T10:00:00+05:30"}},
			{delivery: "d2", entries: []string{"upsert ITEM-1 2 2026-01-01T10:00:00.000002+05:30"}},
			{delivery: "d3", entries: []string{"delete ITEM-2 3 -"}},
		}, 0},
		{"same content again under a newer version (resync)", []accept{
			{delivery: "d1", entries: []string{"upsert ITEM-1 1 2026-01-01T10:00:00+05:30"}},
			{delivery: "d2", entries: []string{"upsert ITEM-1 2 2026-01-01T10:00:00+05:30"}},
			{delivery: "d3", entries: []string{"delete ITEM-1 3 -"}},
			{delivery: "d4", entries: []string{"delete ITEM-1 4 -"}},
		}, 0},
		{"older content under a newer version", []accept{
			{delivery: "d1", entries: []string{"upsert ITEM-1 1 2026-01-01T10:00:05+05:30"}},
			{delivery: "d2", entries: []string{"upsert ITEM-1 2 2026-01-01T10:00:04.999999+05:30", "upsert ITEM-2 2 2026-01-01T10:00:00+05:30"}},
			{delivery: "d3", entries: []string{"upsert ITEM-1 3 2026-01-01T10:00:05+05:30"}},
		}, 1},
		{"older than the newest, not only the last", []accept{
			{delivery: "d1", entries: []string{"upsert ITEM-1 1 2026-01-01T10:00:05+05:30"}},
			{delivery: "d2", entries: []string{"upsert ITEM-1 2 2026-01-01T10:00:01+05:30"}},
			{delivery: "d3", entries: []string{"upsert ITEM-1 3 2026-01-01T10:00:03+05:30"}},
		}, 2},
		{"upsert after the delete", []accept{
			{delivery: "d1", entries: []string{"delete ITEM-1 5 -"}},
			{delivery: "d2", entries: []string{"upsert ITEM-1 6 2026-01-01T10:00:00+05:30"}},
		}, 1},
		{"a line without its body", []accept{
			{delivery: "d1", entries: []string{"upsert ITEM-1 1 2026-01-01T10:00:00+05:30"}, skipBody: true},
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrderCheck()
			for _, a := range tc.accepts {
				var items, lines []string
				for _, e := range a.entries {
					var op, code, modified string
					var version int64
					if _, err := fmt.Sscan(e, &op, &code, &version, &modified); err != nil {
						t.Fatal(err)
					}
					item := fmt.Sprintf(`{"item_code":%q,"op":%q,"version":%d`, code, op, version)
					if modified != "-" {
						item += fmt.Sprintf(`,"modified":%q,"item_name":"Lamp \"A\" = B"`, modified)
					}
					items = append(items, item+"}")
					lines = append(lines, fmt.Sprintf("accepted tenant=acme delivery=%s op=%s item=%s version=%d name=%q\n", a.delivery, op, code, version, `Lamp "A" = B`))
				}
				if !a.skipBody {
					o.body(a.delivery, []byte(`{"delivery_id":"`+a.delivery+`","items":[`+strings.Join(items, ",")+`],"tenant":"acme"}`))
				}
				if _, err := o.Write([]byte(strings.Join(lines, ""))); err != nil {
					t.Fatal(err)
				}
			}
			if got := o.older(); got != tc.want {
				t.Errorf("older() = %d, want %d; flagged: %q", got, tc.want, o.examples())
			}
		})
	}
}

// TestSecretsIn: every secret in every output is found once, and an empty
// secret (a key that is not text) is never searched for.
func TestSecretsIn(t *testing.T) {
	secrets := []namedOutput{{"the tenant secret", "c2VjcmV0LXNlY3JldA"}, {"the database password", "ro-pass-Secret9"}, {"the tenant key", ""}}
	tests := []struct {
		name string
		outs []namedOutput
		want []string
	}{
		{"clean", []namedOutput{{"log", "dsn=ro:xxxxx@tcp(127.0.0.1:3306)/db"}, {"stderr", ""}}, nil},
		{"password in the log", []namedOutput{{"log", "err=\"dial ro:ro-pass-Secret9@tcp\""}, {"stderr", "ok"}},
			[]string{"log reveals the database password"}},
		{"both in one output, one in another", []namedOutput{{"log", "ok"}, {"stdout", "c2VjcmV0LXNlY3JldA ro-pass-Secret9"}, {"stderr", "c2VjcmV0LXNlY3JldA"}},
			[]string{"stdout reveals the tenant secret", "stdout reveals the database password", "stderr reveals the tenant secret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := secretsIn(secrets, tc.outs)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("secretsIn = %q, want %q", got, tc.want)
			}
		})
	}
}
