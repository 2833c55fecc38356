package detector

// Hooks for the external tests of the sources (package detector_test).

// SourceQueries are the page and window queries a poll runs for source, for
// a window [lower, upper].
func SourceQueries(source, lower, upper string) []PlannedQuery {
	for _, t := range tables() {
		if t.source != source {
			continue
		}
		page, args := pollQuery(t), []any{lower, lower, "", 500}
		if t.filter != "" || t.serverClock {
			page, args = groupQuery(t), []any{lower, lower, "", upper, 500}
		}
		return []PlannedQuery{
			{"page", page, args},
			{"page of one modified", groupQuery(t), []any{upper, upper, "", upper, 500}},
			{"window checksum", windowQuery(t), []any{lower, upper}},
			{"window checksums by modified", windowGroupsQuery(t), []any{lower, upper}},
		}
	}
	return nil
}

// KeyedQuery is a query and the index it must read.
type KeyedQuery struct {
	PlannedQuery
	Key string
}

// ExpansionQueries are the queries that stream a price list's and an item
// group's items, and those that find variants, moved prices and merges.
func ExpansionQueries() []KeyedQuery {
	return []KeyedQuery{
		{PlannedQuery{"price list items", priceListItemsQuery, []any{"Wholesale", "", 500}}, "price_list"},
		{PlannedQuery{"item group items", groupItemsQuery, []any{"Products", "", 500}}, "item_group"},
		{PlannedQuery{"variants", "SELECT name FROM `tabItem` WHERE variant_of IN (?, ?)", []any{"ITEM-00010", "ITEM-00060"}}, "variant_of"},
		{PlannedQuery{"versions", "SELECT data FROM `tabVersion` WHERE ref_doctype = 'Item Price' AND docname IN (?, ?) AND modified >= ?",
			[]any{"a", "b", "2026-01-01 00:00:00.000000"}}, "ref_doctype_docname_index"},
		{PlannedQuery{"merges", mergesQuery(2), []any{"2026-01-01 00:00:00.000000", "2026-01-01 00:10:00.000000", "a", "b"}}, "modified"},
	}
}
