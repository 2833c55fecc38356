package detector

// Hooks for the external tests (package detector_test).

// RowsRead is how many rows the page queries of polls have read.
func (d *Detector) RowsRead() int { return d.stats.rowsRead }

// WindowRereads is how many window checks found the overlap window changed
// and re-read rows.
func (d *Detector) WindowRereads() int { return d.stats.windowRereads }

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
