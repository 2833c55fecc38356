-- Frappe core tables the sync reads that shared/erpnext/schema.sql does not hold, in the same
-- create-table form (FINDINGS §1.1-§1.3).

-- Version (Frappe v15 core/doctype/version/version.json: ref_doctype Link, docname Data, data Code,
-- table_html HTML (no column)); version.py on_doctype_update(): add_index("Version", ["ref_doctype",
-- "docname"]). ERPNext writes one on every save of a doctype with track_changes (Item Price among them):
-- data = JSON {"changed": [[field, old, new], ...], ...}.
CREATE TABLE `tabVersion` (
  `name` varchar(140) NOT NULL PRIMARY KEY,
  `creation` datetime(6),
  `modified` datetime(6),
  `modified_by` varchar(140),
  `owner` varchar(140),
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `ref_doctype` varchar(140),
  `docname` varchar(140),
  `data` longtext,
  `_user_tags` text,
  `_comments` text,
  `_assign` text,
  `_liked_by` text,
  KEY `modified` (`modified`),
  KEY `ref_doctype_docname_index` (`ref_doctype`, `docname`)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
