package detector

import (
	"context"
	"fmt"

	"github.com/orderweave/erpsync/signer"
)

// Hooks for the external tests (package detector_test).

// RowsRead is how many rows the page queries of polls have read.
func (d *Detector) RowsRead() int { return d.stats.rowsRead }

// WindowRereads is how many window checks found the overlap window changed
// and re-read rows.
func (d *Detector) WindowRereads() int { return d.stats.windowRereads }

// NameLookups is how many queries Build has run to match item codes with
// tabItem names beyond its page queries.
func (d *Detector) NameLookups() int { return d.stats.nameLookups }

// ItemNamesQuery is the query that matches n item codes with tabItem names.
func ItemNamesQuery(n int) string { return itemNamesQuery(n) }

// SeenRows is how many rows of source the detector remembers as handed out.
func (d *Detector) SeenRows(source string) int {
	if s := d.seen[source]; s != nil {
		return s.len()
	}
	return 0
}

// RowChecksum is rowChecksum.
func RowChecksum(name, modified string) uint32 {
	_, c := rowChecksum(nil, name, modified)
	return c
}

// PlannedQuery is a query a poll runs, with arguments to EXPLAIN it with.
type PlannedQuery struct {
	Name, SQL string
	Args      []any
}

// PollQueries are the queries a poll runs on tableName, for a window [lower,
// upper].
func PollQueries(tableName, lower, upper string) []PlannedQuery {
	t := table{name: tableName}
	return []PlannedQuery{
		{"page", pollQuery(t), []any{lower, lower, "", 500}},
		{"page of one modified", groupQuery(t), []any{upper, upper, "", upper, 500}},
		{"window checksum", windowQuery(t), []any{lower, upper}},
		{"window checksums by modified", windowGroupsQuery(t), []any{lower, upper}},
	}
}

// PageQueries are the two page queries of a poll on tableName, positioned
// after the row (modified, name).
func PageQueries(tableName, modified, name string, limit int) []PlannedQuery {
	t := table{name: tableName}
	return []PlannedQuery{
		{"page", pollQuery(t), []any{modified, modified, name, limit}},
		{"page of one modified", groupQuery(t), []any{modified, modified, name, modified, limit}},
	}
}

// ReferenceBuild builds codes as Build does, with the builder Build replaced
// (build_reference_test.go), and returns each item's content as canonical
// JSON, in Build's order; a deleted item's is "".
func (d *Detector) ReferenceBuild(ctx context.Context, codes []string) ([]string, error) {
	codes = uniqueSorted(codes)
	var out []string
	for start := 0; start < len(codes); start += d.cfg.PageSize {
		page, err := d.refBuildPage(ctx, codes[start:min(start+d.cfg.PageSize, len(codes))])
		if err != nil {
			return nil, err
		}
		for _, it := range page {
			if it.Deleted {
				out = append(out, "")
				continue
			}
			b, err := signer.Canonical(it.Fields)
			if err != nil {
				return nil, fmt.Errorf("item %s: %w", it.Code, err)
			}
			out = append(out, string(b))
		}
	}
	return out, nil
}
