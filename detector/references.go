package detector

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// What settings name, and what can be wrong with a name (Reference).
const (
	KindPriceList = "price list"
	KindWarehouse = "warehouse"
	KindItemGroup = "item group"
	KindBrand     = "brand"

	// ProblemMissing: no row of the doctype has the name (RenamedTo holds the
	// name ERPNext recorded a rename to, when it did).
	ProblemMissing = "missing"
	// ProblemDisabled: a Price List with Enabled off, or a Warehouse with
	// Disabled on.
	ProblemDisabled = "disabled"
	// ProblemNotSelling: a Price List with Selling off. Only a warning: its
	// prices are sent because the settings name it.
	ProblemNotSelling = "not selling"
)

// Reference is a name in the settings (erp.price_lists, erp.warehouses,
// erp.item_groups, erp.brands) that does not name what the settings mean:
// it does not exist (deleted, or renamed: ERPNext renames a Price List, Item
// Group or Brand without a trace in the rows that would have carried it), or
// it is disabled, or (a warning) a price list is not for selling. Left as it
// is, prices, stock or items are silently not sent.
type Reference struct {
	Kind      string // KindPriceList, KindWarehouse, KindItemGroup or KindBrand
	Key       string // the settings key: "erp.price_lists", "erp.warehouses", "erp.item_groups", "erp.brands"
	Name      string // the name as the settings write it
	Problem   string // ProblemMissing, ProblemDisabled or ProblemNotSelling
	RenamedTo string // for ProblemMissing: the document's name now, when ERPNext recorded its rename; else ""
	// Message says what is wrong, for users: `erp.price_lists names "Retail",
	// which does not exist; ERPNext recorded its rename to "Retail KE"`.
	Message string
	fix     string // what to do; %[1]s is the settings file
}

// Severe reports whether the reference is an error (the settings must
// change): every problem but ProblemNotSelling, which is a warning.
func (r Reference) Severe() bool { return r.Problem != ProblemNotSelling }

// Fix says what to do, naming the settings file (file; "" for "the settings
// file"): `write "Retail KE" instead of "Retail" in erp.price_lists of
// /etc/erpsync/settings.toml`.
func (r Reference) Fix(file string) string {
	if r.fix == "" {
		return ""
	}
	if file == "" {
		file = "the settings file"
	}
	return fmt.Sprintf(r.fix, file)
}

// Text is Message and Fix in one sentence, for a log line.
func (r Reference) Text(file string) string { return r.Message + ": " + r.Fix(file) }

// refKind is one kind of name the settings hold, and how its table says it
// is disabled or not for selling (SQL over the row; "0" for never).
type refKind struct {
	kind, key, doctype string
	names              []string
	disabled           string
	notSelling         string
	consequence        string // what a missing or disabled name leads to
}

func refKinds(sel Selection) []refKind {
	return []refKind{
		{KindPriceList, "erp.price_lists", "Price List", sel.PriceLists, "`enabled` = 0", "`selling` = 0", "no price of it is sent"},
		{KindWarehouse, "erp.warehouses", "Warehouse", sel.Warehouses, "`disabled` <> 0", "0", "no stock of it is sent"},
		{KindItemGroup, "erp.item_groups", "Item Group", sel.ItemGroups, "0", "0", "it selects no item"},
		{KindBrand, "erp.brands", "Brand", sel.Brands, "0", "0", "it selects no item"},
	}
}

// CheckReferences is CheckReferences of the Detector's current Selection.
func (d *Detector) CheckReferences(ctx context.Context) ([]Reference, error) {
	return checkReferences(ctx, d.db, d.cfg.Selection)
}

// CheckReferences checks every name sel holds in PriceLists, Warehouses,
// ItemGroups and Brands against the database, and returns one Reference per
// name that is wrong, in the order of the settings (price lists, warehouses,
// item groups, brands); none when all are fine. Names are matched as the
// database matches them (the tables' collation: "retail" names "Retail").
// For a missing name it looks for the rename ERPNext recorded: rename_doc
// writes an Edit Comment on the renamed document whose content holds the old
// and new names in <strong> (in whatever language and order the sentence is
// translated to), and moves the document's comments along with later
// renames, so the comment's reference_name is the document's name now.
// Brands are checked only where tabBrand exists. It costs one query per kind
// of name set, and one per kind with missing names.
func CheckReferences(ctx context.Context, db *sql.DB, sel Selection) ([]Reference, error) {
	sdb, err := newSiteDB(ctx, db, "")
	if err != nil {
		return nil, err
	}
	return checkReferences(ctx, sdb, sel)
}

func checkReferences(ctx context.Context, db *siteDB, sel Selection) ([]Reference, error) {
	var out []Reference
	var tables map[string]bool
	for _, k := range refKinds(sel) {
		names := uniqueNames(k.names)
		if len(names) == 0 {
			continue
		}
		if tables == nil {
			var err error
			if tables, err = optionalTables(ctx, db); err != nil {
				return nil, err
			}
		}
		if k.kind == KindBrand && !tables["tabBrand"] {
			continue // an ERPNext site has it; a database without it cannot say
		}
		refs, err := checkKind(ctx, db, k, names, tables["tabComment"])
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}

// uniqueNames is names without empty and repeated ones, in order.
func uniqueNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// optionalTables says which of the tables an ERPNext site has and a bare
// database may lack exist.
func optionalTables(ctx context.Context, db *siteDB) (map[string]bool, error) {
	have := map[string]bool{}
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? "+
		"AND TABLE_NAME IN ('tabBrand', 'tabComment')", db.schema)
	if err != nil {
		return nil, fmt.Errorf("list the tables of the database: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("list the tables of the database: %w", err)
		}
		have[t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the tables of the database: %w", err)
	}
	return have, nil
}

// nameState is what the table says of one name.
type nameState struct {
	found                bool
	disabled, notSelling bool
}

// checkKind checks the names of one kind.
func checkKind(ctx context.Context, db *siteDB, k refKind, names []string, comments bool) ([]Reference, error) {
	states, err := lookupNames(ctx, db, k, names)
	if err != nil {
		return nil, err
	}
	var missing []string
	for i, n := range names {
		if !states[i].found {
			missing = append(missing, n)
		}
	}
	renamed := map[string]string{}
	if len(missing) > 0 && comments {
		if renamed, err = findRenames(ctx, db, k, missing); err != nil {
			return nil, err
		}
	}
	var out []Reference
	for i, n := range names {
		st := states[i]
		switch {
		case !st.found:
			out = append(out, missingRef(k, n, renamed[n], names))
		case st.disabled:
			out = append(out, Reference{Kind: k.kind, Key: k.key, Name: n, Problem: ProblemDisabled,
				Message: fmt.Sprintf("%s names %q, a %s that is disabled in ERPNext: %s", k.key, n, k.doctype, disabledMeans(k)),
				fix:     fmt.Sprintf("enable %s %s in ERPNext, or remove it from %s of %%[1]s", k.doctype, pct(strconv.Quote(n)), k.key)})
		case st.notSelling:
			out = append(out, Reference{Kind: k.kind, Key: k.key, Name: n, Problem: ProblemNotSelling,
				Message: fmt.Sprintf("%s names %q, a %s that is not for selling (Selling is off in ERPNext); its prices are sent all the same, because the settings name it", k.key, n, k.doctype),
				fix:     fmt.Sprintf("nothing to do if the shop is meant to show them; otherwise remove it from %s of %%[1]s", k.key)})
		}
	}
	return out, nil
}

// disabledMeans says what a disabled name of kind k means for the shop.
func disabledMeans(k refKind) string {
	if k.kind == KindWarehouse {
		return "ERPNext moves no stock through it, and its stock is still sent"
	}
	return "ERPNext no longer sells at its prices, and they are still sent"
}

// missingRef is the Reference of name, which names no row; renamedTo is the
// name ERPNext recorded a rename to, or "".
func missingRef(k refKind, name, renamedTo string, names []string) Reference {
	r := Reference{Kind: k.kind, Key: k.key, Name: name, Problem: ProblemMissing, RenamedTo: renamedTo}
	q := pct(strconv.Quote(name))
	if renamedTo == "" {
		r.Message = fmt.Sprintf("%s names %q, which does not exist: no %s has that name, and ERPNext recorded no rename of it, so %s",
			k.key, name, k.doctype, k.consequence)
		r.fix = fmt.Sprintf("write the name of an existing %s (as ERPNext shows it) instead of %s in %s of %%[1]s, or remove it", k.doctype, q, k.key)
		return r
	}
	r.Message = fmt.Sprintf("%s names %q, which does not exist; ERPNext recorded its rename to %q", k.key, name, renamedTo)
	if slices.ContainsFunc(names, func(n string) bool { return sameName(n, renamedTo) }) {
		r.fix = fmt.Sprintf("remove %s from %s of %%[1]s (it names %s already)", q, k.key, pct(strconv.Quote(renamedTo)))
	} else {
		r.fix = fmt.Sprintf("write %s instead of %s in %s of %%[1]s", pct(strconv.Quote(renamedTo)), q, k.key)
	}
	return r
}

// pct escapes % for a format string.
func pct(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// lookupNames says, for each name, whether a row of k's table matches it
// (by the table's collation) and how it is flagged: one query, each part a
// primary key lookup.
func lookupNames(ctx context.Context, db *siteDB, k refKind, names []string) ([]nameState, error) {
	var b strings.Builder
	for i := range names {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT %d, %s, %s FROM %s WHERE name = ?", i, k.disabled, k.notSelling, quoteIdent("tab"+k.doctype))
	}
	rows, err := db.QueryContext(ctx, b.String(), anySlice(names)...)
	if err != nil {
		return nil, fmt.Errorf("look up %s in tab%s: %w", k.key, k.doctype, err)
	}
	defer rows.Close()
	states := make([]nameState, len(names))
	for rows.Next() {
		var i, disabled, notSelling int
		if err := rows.Scan(&i, &disabled, &notSelling); err != nil {
			return nil, fmt.Errorf("look up %s in tab%s: %w", k.key, k.doctype, err)
		}
		if i >= 0 && i < len(states) {
			states[i] = nameState{found: true, disabled: disabled != 0, notSelling: notSelling != 0}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up %s in tab%s: %w", k.key, k.doctype, err)
	}
	return states, nil
}

// findRenames finds, for each missing name, the name now of the document
// ERPNext recorded renaming from it (or merging it into): the newest Edit
// comment of the doctype with the name in <strong> whose document exists.
// The comment's words are translated; only the bold names are relied on.
func findRenames(ctx context.Context, db *siteDB, k refKind, missing []string) (map[string]string, error) {
	var b strings.Builder
	b.WriteString("SELECT reference_name, content FROM `tabComment` WHERE reference_doctype = ? AND comment_type = 'Edit' AND (")
	args := []any{k.doctype}
	for i, n := range missing {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("content LIKE ? ESCAPE '|'")
		args = append(args, boldPattern(n))
	}
	b.WriteString(") ORDER BY creation DESC, name DESC")
	rows, err := db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read the renames of %s (tabComment): %w", k.doctype, err)
	}
	defer rows.Close()
	candidates := map[string][]string{} // missing name -> names now, newest rename first
	var seen []string
	for rows.Next() {
		var ref, content sql.NullString
		if err := rows.Scan(&ref, &content); err != nil {
			return nil, fmt.Errorf("read the renames of %s (tabComment): %w", k.doctype, err)
		}
		if ref.String == "" {
			continue
		}
		bolds := boldNames(content.String)
		for _, n := range missing {
			if slices.ContainsFunc(bolds, func(b string) bool { return sameName(b, n) }) && !sameName(ref.String, n) {
				candidates[n] = append(candidates[n], ref.String)
				if !slices.Contains(seen, ref.String) {
					seen = append(seen, ref.String)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the renames of %s (tabComment): %w", k.doctype, err)
	}
	if len(seen) == 0 {
		return map[string]string{}, nil
	}
	// A document renamed and then deleted left comments behind, perhaps:
	// only a document that exists is a name to suggest.
	states, err := lookupNames(ctx, db, k, seen)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for n, cs := range candidates {
		for _, c := range cs {
			if states[slices.Index(seen, c)].found {
				out[n] = c
				break
			}
		}
	}
	return out, nil
}

// boldRE finds what frappe.bold wrote: <strong>text</strong>.
var boldRE = regexp.MustCompile(`(?s)<strong>(.*?)</strong>`)

// boldNames are the texts in <strong> of a comment's content, unescaped
// (Comment.validate runs sanitize_html on the content, which escapes &, <
// and > in text).
func boldNames(content string) []string {
	var out []string
	for _, m := range boldRE.FindAllStringSubmatch(content, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// boldPattern is a LIKE pattern (escape character |) that the content of a
// comment holding name in <strong> matches, however its characters were
// HTML-escaped: a character that may be written as an entity (& < > " ' and
// no-break space) matches anything.
func boldPattern(name string) string {
	var b strings.Builder
	b.WriteString("%<strong>")
	for _, r := range name {
		switch r {
		case '&', '<', '>', '"', '\'', '\u00a0':
			b.WriteByte('%')
		case '|', '%', '_':
			b.WriteByte('|')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("</strong>%")
	return b.String()
}

// sameName approximates how the tables' collation (utf8mb4_unicode_ci, PAD
// SPACE) compares two names: case folded, trailing spaces ignored. The
// database has matched the candidates already (LIKE); this only rules out
// bold texts that merely contain the name.
func sameName(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, " "), strings.TrimRight(b, " "))
}
