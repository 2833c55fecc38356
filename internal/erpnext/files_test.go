package erpnext

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAttachAndRemoveFile(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "F1", Group: "G", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	item := join(row(t, s.DB, "SELECT `modified`, `modified_by` FROM `tabItem` WHERE `name` = 'F1'"))
	const now = "2026-06-01 03:00:00.000000"
	s.Now = fixedClock(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	files := []struct {
		url     string
		private bool
		want    string // file_name|is_private|file_type|folder|attached_to|content_hash set|creation|modified
		comment string
	}{
		{"/files/demo new.jpg", false, "demo new.jpg|0|JPG|Home/Attachments|Item F1|1|" + now + "|" + now,
			`Added <a href="/files/demo%20new.jpg" target="_blank">demo new.jpg</a>`},
		{"/private/files/spec <v2>.pdf", true, "spec <v2>.pdf|1|PDF|Home/Attachments|Item F1|1|" + now + "|" + now,
			`Added <a href="/private/files/spec%20%3Cv2%3E.pdf" target="_blank">spec &lt;v2&gt;.pdf</a> <i class="fa fa-lock text-warning"></i>`},
		{"https://cdn.example.com/img/caf%C3%A9.png?x=1", false, "caf%C3%A9.png?x=1|0|<nil>|Home/Attachments|Item F1|0|" + now + "|" + now,
			`Added <a href="https://cdn.example.com/img/caf%25C3%25A9.png%3Fx%3D1" target="_blank">caf%C3%A9.png?x=1</a>`},
	}
	for _, f := range files {
		if err := s.AttachFile(ctx, "F1", f.url, f.private); err != nil {
			t.Fatal(err)
		}
		r := row(t, s.DB, "SELECT `name`, `file_name`, `is_private`, `file_type`, `folder`, CONCAT(`attached_to_doctype`, ' ', `attached_to_name`), "+
			"`content_hash` IS NOT NULL, `creation`, `modified` FROM `tabFile` WHERE `file_url` = ?", f.url)
		if !hashName.MatchString(r[0]) || join(r[1:]) != f.want {
			t.Errorf("File %s = %s\nwant <hash>|%s", f.url, join(r), f.want)
		}
		c := row(t, s.DB, "SELECT `reference_doctype`, `reference_name`, `comment_email`, `creation`, `content` FROM `tabComment` "+
			"WHERE `comment_type` = 'Attachment' ORDER BY `content` LIKE ? DESC LIMIT 1", "%"+f.comment+"%")
		if want := "Item|F1|Administrator|" + now + "|" + f.comment; join(c) != want {
			t.Errorf("Attachment comment\n got %s\nwant %s", join(c), want)
		}
	}
	if got := join(row(t, s.DB, "SELECT `modified`, `modified_by` FROM `tabItem` WHERE `name` = 'F1'")); got != item {
		t.Errorf("attaching moved the Item: %s → %s", item, got)
	}

	name := row(t, s.DB, "SELECT `name` FROM `tabFile` WHERE `file_url` = ?", files[1].url)[0]
	if err := s.RemoveFile(ctx, "F1", files[1].url); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s.DB, "SELECT COUNT(*) FROM `tabFile` WHERE `attached_to_name` = 'F1'"); n != 2 {
		t.Errorf("%d files left, want 2", n)
	}
	if got, want := deletedDocs(t, s), []string{"File|" + name + "|" + now + "|" + now}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Deleted Documents %q, want %q", got, want)
	}
	if _, data := deletedData(t, s, "File", name); data["file_url"] != files[1].url || data["doctype"] != "File" || data["is_private"] != 1.0 {
		t.Errorf("Deleted Document data %v", data)
	}
	if got := join(row(t, s.DB, "SELECT `reference_name`, `content` FROM `tabComment` WHERE `comment_type` = 'Attachment Removed'")); got != "F1|Removed spec &lt;v2&gt;.pdf" {
		t.Errorf("Attachment Removed comment %s", got)
	}
	if got := join(row(t, s.DB, "SELECT `modified`, `modified_by` FROM `tabItem` WHERE `name` = 'F1'")); got != item {
		t.Errorf("removing moved the Item: %s → %s", item, got)
	}
	if err := s.RemoveFile(ctx, "F1", files[1].url); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if err := s.AttachFile(ctx, "NOPE", "/files/x.png", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("attach to a missing item: %v", err)
	}

	// Deleting the Item deletes its Files (a Deleted Document each, no comment on the gone Item), then
	// the delete_dynamic_links job deletes its Comments and Versions; the 'Deleted' feed stays.
	if _, err := s.DB.Exec("INSERT INTO `tabVersion` (`name`, `ref_doctype`, `docname`) VALUES ('v1', 'Item', 'F1'), ('v2', 'Item', 'F2')"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteItem(ctx, "F1"); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		q    string
		want int
	}{
		{"SELECT COUNT(*) FROM `tabFile`", 0},
		{"SELECT COUNT(*) FROM `tabDeleted Document` WHERE `deleted_doctype` = 'File'", 3},
		{"SELECT COUNT(*) FROM `tabDeleted Document` WHERE `deleted_doctype` = 'Item'", 1},
		{"SELECT COUNT(*) FROM `tabComment` WHERE `comment_type` = 'Attachment Removed'", 0},
		{"SELECT COUNT(*) FROM `tabComment` WHERE `reference_name` = 'F1'", 0},
		{"SELECT COUNT(*) FROM `tabComment` WHERE `comment_type` = 'Deleted' AND `subject` = 'Item F1'", 1},
		{"SELECT COUNT(*) FROM `tabVersion`", 1},
	}
	for _, c := range checks {
		if n := count(t, s.DB, c.q); n != c.want {
			t.Errorf("%s = %d, want %d", c.q, n, c.want)
		}
	}
}

func TestPyQuote(t *testing.T) {
	for in, want := range map[string]string{"/files/a b.jpg": "/files/a%20b.jpg", "https://x.y/é?q=1&r": "https://x.y/%C3%A9%3Fq%3D1%26r", "a-b_c.d~e": "a-b_c.d~e"} {
		if got := pyQuote(in); got != want {
			t.Errorf("pyQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
