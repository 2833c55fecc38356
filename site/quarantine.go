package site

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// metaQuarantine is the outbox meta key holding the quarantined items
// (quarantineSet.text). It is small: only items whose values cannot be built
// are in it, at most maxQuarantined of them.
const metaQuarantine = "quarantine"

// maxQuarantined bounds the quarantine kept for status; past it, items are
// still skipped and logged, and counted in Dropped.
const maxQuarantined = 1000

// Quarantine is an item that cannot be built: nothing is sent for it (the
// receiver keeps its last state) until a build of it succeeds, which is
// tried on its next change and at every sweep.
type Quarantine struct {
	Code   string    `json:"item_code"`
	Column string    `json:"column"`
	Value  string    `json:"value"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// quarantineSet is what metaQuarantine holds.
type quarantineSet struct {
	Items   map[string]Quarantine
	Dropped int // quarantined past maxQuarantined
}

// Quarantined reads the quarantined items of the site whose outbox is ob,
// ordered by code, and how many more were quarantined than are kept.
func Quarantined(ctx context.Context, ob *outbox.Outbox) ([]Quarantine, int, error) {
	v, _, err := ob.Meta(ctx, metaQuarantine)
	if err != nil {
		return nil, 0, err
	}
	set, err := parseQuarantine(v)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Quarantine, 0, len(set.Items))
	for _, code := range slices.Sorted(maps.Keys(set.Items)) {
		out = append(out, set.Items[code])
	}
	return out, set.Dropped, nil
}

// parseQuarantine reads metaQuarantine's text: a first line "dropped N",
// then one line per item of five Go-quoted fields separated by tabs (code,
// column, value, reason, since): quoting keeps every byte of a code that is
// not valid UTF-8, which JSON would replace.
func parseQuarantine(v string) (quarantineSet, error) {
	set := quarantineSet{Items: map[string]Quarantine{}}
	if v == "" {
		return set, nil
	}
	bad := fmt.Errorf("read the quarantined items: the outbox's %q meta value is damaged", metaQuarantine)
	lines := strings.Split(strings.TrimSuffix(v, "\n"), "\n")
	if _, err := fmt.Sscanf(lines[0], "dropped %d", &set.Dropped); err != nil {
		return set, bad
	}
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return set, bad
		}
		for i := range f {
			u, err := strconv.Unquote(f[i])
			if err != nil {
				return set, bad
			}
			f[i] = u
		}
		since, err := time.Parse(time.RFC3339Nano, f[4])
		if err != nil {
			return set, bad
		}
		set.Items[f[0]] = Quarantine{Code: f[0], Column: f[1], Value: f[2], Reason: f[3], Since: since}
	}
	return set, nil
}

// text is what parseQuarantine reads.
func (set quarantineSet) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dropped %d\n", set.Dropped)
	for _, code := range slices.Sorted(maps.Keys(set.Items)) {
		q := set.Items[code]
		b.WriteString(strings.Join([]string{strconv.Quote(q.Code), strconv.Quote(q.Column), strconv.Quote(q.Value),
			strconv.Quote(q.Reason), strconv.Quote(q.Since.UTC().Format(time.RFC3339Nano))}, "\t"))
		b.WriteByte('\n')
	}
	return b.String()
}

// quarantineChange is what one write did to the quarantine.
type quarantineChange struct {
	added    []Quarantine
	released []string
	total    int
}

// updateQuarantine records in tx the items of a batch that could not be
// built (problems) and releases those built now (built), reading the stored
// set only when there is something to add or something may be released.
func updateQuarantine(ctx context.Context, tx *outbox.Tx, problems []detector.Item, built []string, now time.Time) (quarantineChange, error) {
	v, _, err := tx.Meta(ctx, metaQuarantine)
	if err != nil || (v == "" && len(problems) == 0) {
		return quarantineChange{}, err
	}
	set, err := parseQuarantine(v)
	if err != nil {
		return quarantineChange{}, err
	}
	var ch quarantineChange
	for _, code := range built {
		if _, ok := set.Items[code]; ok {
			delete(set.Items, code)
			ch.released = append(ch.released, code)
		}
	}
	for _, it := range problems {
		q := Quarantine{Code: it.Code, Column: it.Problem.Column, Value: it.Problem.Value, Reason: it.Problem.Reason, Since: now.UTC()}
		if old, ok := set.Items[it.Code]; ok {
			q.Since = old.Since
		} else if len(set.Items) >= maxQuarantined {
			set.Dropped++
			ch.added = append(ch.added, q)
			continue
		}
		if old, ok := set.Items[it.Code]; !ok || old.Column != q.Column || old.Reason != q.Reason {
			ch.added = append(ch.added, q)
		}
		set.Items[it.Code] = q
	}
	ch.total = len(set.Items) + set.Dropped
	if len(ch.added) == 0 && len(ch.released) == 0 {
		return ch, nil
	}
	if len(set.Items) == 0 {
		set.Dropped = 0
		ch.total = 0
		return ch, tx.SetMeta(ctx, metaQuarantine, "")
	}
	return ch, tx.SetMeta(ctx, metaQuarantine, set.text())
}

// log writes an ERROR line per newly quarantined item, naming the item and
// the column, and an INFO line per item released.
func (ch quarantineChange) log(ctx context.Context, logger *slog.Logger) {
	for _, q := range ch.added {
		logger.LogAttrs(ctx, slog.LevelError, "item quarantined: a value of it cannot be sent; the other items and detection go on, and it is tried again on its next change and at the sweep",
			slog.String("item", q.Code), slog.String("column", q.Column), slog.String("value", q.Value), slog.String("reason", q.Reason))
	}
	for _, code := range ch.released {
		logger.LogAttrs(ctx, slog.LevelInfo, "item out of quarantine: it builds again and is sent", slog.String("item", code))
	}
}
