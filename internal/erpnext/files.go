package erpnext

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"unicode"
)

// Files attached to an Item (FINDINGS §8.6): an upload writes one tabFile row and, from File.after_insert
// (create_attachment_record), one 'Attachment' Comment on the Item; removing it (remove_attach →
// delete_doc("File")) writes an 'Attachment Removed' Comment from File.on_trash and one Deleted Document
// 'File'. Neither touches tabItem.modified.

// attachmentsFolder is the folder set_folder_name gives files attached to a document.
const attachmentsFolder = "Home/Attachments"

// AttachFile attaches fileURL to the Item code as an upload from the desk's attachment sidebar does:
// a tabFile row (random hash name, creation = modified = site now, file_name the last segment of the
// URL, attached_to_field NULL, folder Home/Attachments) and an 'Attachment' Comment on the Item whose
// content links the file ("Added <a href=…>name</a>", with a lock icon when private). Files on the site
// (/files/…, /private/files/…) get a content_hash, here the MD5 of the URL standing in for the content's;
// web URLs get none. The Item is not changed. ErrNotFound when the Item does not exist.
func (s *Site) AttachFile(ctx context.Context, code, fileURL string, private bool) error {
	if fileURL == "" || strings.TrimSpace(fileURL) != fileURL {
		return fmt.Errorf("erpnext: attaching to %s: invalid file URL %q", code, fileURL)
	}
	name := fileName(fileURL)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "SELECT 1 FROM `tabItem` WHERE `name` = ? LOCK IN SHARE MODE", code); err != nil {
			return fmt.Errorf("erpnext: attaching %s to item %s: %w", fileURL, code, err)
		}
		now := s.now()
		err := insertHashNamed(ctx, tx, "INSERT INTO `tabFile` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
			"`file_name`, `is_private`, `file_type`, `file_url`, `folder`, `attached_to_doctype`, `attached_to_name`, `content_hash`) "+
			"VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, 'Item', ?, ?)",
			now, now, adminUser, adminUser, name, private, null(fileType(name)), fileURL, attachmentsFolder, code, contentHash(fileURL))
		if err != nil {
			return fmt.Errorf("erpnext: attaching %s to item %s: %w", fileURL, code, err)
		}
		return s.addComment(ctx, tx, comment{kind: "Attachment", doctype: "Item", name: code, content: attachmentAdded(fileURL, name, private)})
	})
}

// RemoveFile removes the Files with URL fileURL attached to the Item code as the desk's remove_attach
// does: per File an 'Attachment Removed' Comment on the Item ("Removed <file name>"), the tabFile row
// deleted and one Deleted Document 'File'. The Item is not changed. ErrNotFound when no such File is
// attached.
func (s *Site) RemoveFile(ctx context.Context, code, fileURL string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := s.removeFiles(ctx, tx, code, fileURL, true)
		if err == nil && n == 0 {
			err = fmt.Errorf("erpnext: file %s of item %s: %w", fileURL, code, ErrNotFound)
		}
		return err
	})
}

// deleteFiles deletes every File attached to the Item code, as remove_all(from_delete=True) does after the
// Item row is gone: no comment, one Deleted Document each.
func (s *Site) deleteFiles(ctx context.Context, tx *sql.Tx, code string, withComment bool) error {
	_, err := s.removeFiles(ctx, tx, code, "", withComment)
	return err
}

// removeFiles deletes the Files attached to the Item code (only those with URL fileURL unless it is "")
// with frappe.delete_doc: File.on_trash's comment when withComment, the row, a Deleted Document. It
// returns how many it deleted.
func (s *Site) removeFiles(ctx context.Context, tx *sql.Tx, code, fileURL string, withComment bool) (int, error) {
	q := "SELECT * FROM `tabFile` WHERE `attached_to_doctype` = 'Item' AND `attached_to_name` = ?"
	args := []any{code}
	if fileURL != "" {
		q += " AND `file_url` = ?"
		args = append(args, fileURL)
	}
	docs, err := loadDocs(ctx, tx, "File", q+" ORDER BY `creation`, `name` FOR UPDATE", args...)
	if err != nil {
		return 0, err
	}
	for _, d := range docs {
		name, _ := d["name"].(string)
		if withComment {
			fname, _ := d["file_name"].(string)
			if err := s.addComment(ctx, tx, comment{kind: "Attachment Removed", doctype: "Item", name: code, content: "Removed " + escapeText(fname)}); err != nil {
				return 0, err
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM `tabFile` WHERE `name` = ?", name); err != nil {
			return 0, fmt.Errorf("erpnext: deleting file %s of item %s: %w", name, code, err)
		}
		if err := s.addDeletedDocument(ctx, tx, "File", name, d); err != nil {
			return 0, err
		}
	}
	return len(docs), nil
}

// fileName is File.set_file_name for a file known by its URL: file_url.split("/")[-1], as it is (an
// upload's URL holds the name unescaped, "/files/demo new.jpg").
func fileName(fileURL string) string {
	return fileURL[strings.LastIndexByte(fileURL, '/')+1:]
}

// fileType is File.set_file_type: the extension in upper case ("JPG"), "" without a plain one.
func fileType(name string) string {
	ext := strings.TrimPrefix(path.Ext(name), ".")
	if strings.ContainsFunc(ext, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		return ""
	}
	return strings.ToUpper(ext)
}

// contentHash stands in for the MD5 of a site file's content; web URLs have none (NULL).
func contentHash(fileURL string) any {
	if strings.HasPrefix(fileURL, "/files/") || strings.HasPrefix(fileURL, "/private/files/") {
		sum := md5.Sum([]byte(fileURL))
		return hex.EncodeToString(sum[:])
	}
	return nil
}

// attachmentAdded is create_attachment_record's comment, as sanitize_html serialises it:
// _("Added {0}").format(f"<a href='{file_url}' target='_blank'>{file_name}</a>{icon}") with file_url
// through quote(safe="/:") and the attribute re-quoted with double quotes.
func attachmentAdded(fileURL, name string, private bool) string {
	icon := ""
	if private {
		icon = ` <i class="fa fa-lock text-warning"></i>`
	}
	return `Added <a href="` + pyQuote(fileURL) + `" target="_blank">` + escapeText(name) + "</a>" + icon
}

// pyQuote is Python's urllib.parse.quote(s, safe="/:") on the UTF-8 bytes of s.
func pyQuote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~/:", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
