package detector

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"regexp"
	"strings"
	"time"
)

// A rename (frappe.rename_doc) rewrites the document's name and every link to
// it without touching `modified`, and leaves one trace a poll can read: a
// Comment with comment_type 'Edit' on the new name, whose content is
// _("renamed from {0} to {1}") or _("merged {0} into {1}") with both names
// through frappe.bold (<strong>…</strong>) and sanitize_html (HTML-escaped).
// A merge also deletes the old document in the same transaction, with a
// Deleted Document. The sentence may be translated and its word order
// changed, so only the two bold names and reference_name count: the bold name
// that is not reference_name is the old name. (FINDINGS §8.1, §8.2.)

// boldName finds frappe.bold's markup. A name's own < > & are escaped by
// sanitize_html, so a bold name holds no tag.
var boldName = regexp.MustCompile(`(?is)<strong>(.*?)</strong>`)

// renamedFrom returns the old name in a rename comment's content whose new
// name is newName: the other of its two bold names.
func renamedFrom(content, newName string) (string, bool) {
	m := boldName.FindAllStringSubmatch(content, -1)
	if len(m) != 2 {
		return "", false
	}
	a, b := html.UnescapeString(m[0][1]), html.UnescapeString(m[1][1])
	for _, same := range []func(x, y string) bool{
		func(x, y string) bool { return x == y },
		strings.EqualFold, // reference_name as the database matched it
	} {
		switch sa, sb := same(a, newName), same(b, newName); {
		case sa && !sb:
			return b, b != ""
		case sb && !sa:
			return a, a != ""
		case sa && sb:
			return "", false
		}
	}
	return "", false
}

// editComment is an 'Edit' Comment on a doctype whose renames change what is
// sent.
type editComment struct {
	name, doctype, newName, content, modified string
}

// editComments maps changed Comment rows to what their renames change:
//
//   - Item: the old code is sent as a delete (renamed, or merged when the
//     old item's Deleted Document was written with the comment), followed by
//     the new item.
//   - Price List: Item Price.price_list was rewritten without `modified`;
//     every item with a price in the (new-named) list is sent again.
//   - Item Group: tabItem.item_group was rewritten without `modified`; every
//     item of the group is sent again.
//
// An Item comment whose two names cannot be found is logged and skipped: the
// tabItem source sees the new name (after_rename bumps its `modified`), and
// the reconciliation sweep deletes the old code.
func (d *Detector) editComments(ctx context.Context, names []string) (work, error) {
	const q = "SELECT name, reference_doctype, reference_name, content, modified FROM `tabComment` " +
		"WHERE name IN (%s) AND comment_type = 'Edit' AND reference_doctype IN ('Item', 'Price List', 'Item Group')"
	var comments []editComment
	for start := 0; start < len(names); start += d.cfg.PageSize {
		chunk := names[start:min(start+d.cfg.PageSize, len(names))]
		err := eachRow(ctx, d.db, fmt.Sprintf(q, placeholders(len(chunk))), anySlice(chunk), func(v []sql.NullString) {
			comments = append(comments, editComment{name: v[0].String, doctype: v[1].String, newName: v[2].String,
				content: v[3].String, modified: normModified(v[4].String)})
		}, 5)
		if err != nil {
			return work{}, err
		}
	}
	var w work
	var renames []rename
	var at []string // the comment's modified, per rename
	for _, c := range comments {
		if c.newName == "" {
			continue
		}
		switch c.doctype {
		case "Price List":
			w.lists = append(w.lists, c.newName)
		case "Item Group":
			w.groups = append(w.groups, c.newName)
		case "Item":
			old, ok := renamedFrom(c.content, c.newName)
			if !ok {
				d.logger.Warn("an Item rename comment does not name the old and the new item code in bold: "+
					"the new item is sent, the old code is deleted by the next reconciliation",
					"comment", c.name, "item", c.newName)
				continue
			}
			renames = append(renames, rename{old: old, new: c.newName, reason: ReasonRenamed})
			at = append(at, c.modified)
		}
	}
	if err := d.markMerges(ctx, renames, at); err != nil {
		return work{}, err
	}
	w.renames = renames
	return w, nil
}

// markMerges sets ReasonMerged on the renames whose old item was deleted, as
// a merge does, within mergeWindow of the comment. One query on a bounded
// range of the modified index of tabDeleted Document (it has no index on
// deleted_doctype or deleted_name).
func (d *Detector) markMerges(ctx context.Context, renames []rename, at []string) error {
	if len(renames) == 0 {
		return nil
	}
	var lo, hi time.Time
	times := make([]time.Time, len(renames))
	olds := make([]string, len(renames))
	for i, r := range renames {
		t, err := time.Parse(ModifiedLayout, at[i])
		if err != nil {
			return fmt.Errorf("rename comment of %s: modified %q is not a timestamp: %w", r.new, at[i], err)
		}
		times[i], olds[i] = t, r.old
		if i == 0 || t.Before(lo) {
			lo = t
		}
		if i == 0 || t.After(hi) {
			hi = t
		}
	}
	win := d.mergeWindow()
	args := append([]any{lo.Add(-win).Format(ModifiedLayout), hi.Add(win).Format(ModifiedLayout)}, anySlice(olds)...)
	deleted := map[string][]time.Time{} // lower-cased deleted_name -> when
	err := eachRow(ctx, d.db, mergesQuery(len(olds)), args, func(v []sql.NullString) {
		if t, err := time.Parse(ModifiedLayout, normModified(v[1].String)); err == nil {
			k := strings.ToLower(v[0].String)
			deleted[k] = append(deleted[k], t)
		}
	}, 2)
	if err != nil {
		return fmt.Errorf("look for merged items in tabDeleted Document: %w", err)
	}
	for i := range renames {
		for _, at := range deleted[strings.ToLower(renames[i].old)] {
			if at.Sub(times[i]).Abs() <= win {
				renames[i].reason = ReasonMerged
			}
		}
	}
	return nil
}

// mergesQuery finds the Item deletes among n old codes in a range of
// tabDeleted Document.modified (arguments: from, to, the codes).
func mergesQuery(n int) string {
	return "SELECT deleted_name, modified FROM `tabDeleted Document` WHERE modified >= ? AND modified <= ? " +
		"AND deleted_doctype = 'Item' AND deleted_name IN (" + placeholders(n) + ")"
}
