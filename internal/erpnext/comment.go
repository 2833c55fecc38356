package erpnext

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// comment is a tabComment row as Document.add_comment and insert_feed write it: kind is comment_type,
// doctype/name the reference (name "" = NULL), content already sanitised HTML ("" = NULL).
type comment struct {
	kind, doctype, name, content, subject string
}

// addComment inserts c like Comment.insert(): a random hash name, creation = modified = site now,
// owner/modified_by/comment_email the session user (Administrator). The referenced document's _comments
// column is not touched: update_comment_in_doc only does that for comment_type 'Comment'.
func (s *Site) addComment(ctx context.Context, tx *sql.Tx, c comment) error {
	now := s.now()
	err := insertHashNamed(ctx, tx, "INSERT INTO `tabComment` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
		"`comment_type`, `comment_email`, `subject`, `reference_doctype`, `reference_name`, `content`) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?)",
		now, now, adminUser, adminUser, c.kind, adminUser, null(c.subject), c.doctype, null(c.name), null(c.content))
	if err != nil {
		return fmt.Errorf("erpnext: %s comment on %s %s: %w", c.kind, c.doctype, c.name, err)
	}
	return nil
}

// escapeText escapes a text node as sanitize_html (bleach) leaves it: & < > only.
var escapeText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// bold is frappe.bold(text) after sanitize_html.
func bold(text string) string { return "<strong>" + escapeText(text) + "</strong>" }
