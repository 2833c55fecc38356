// Package detector finds changed ERPNext items in the site's MariaDB and builds
// each changed item whole: fields, barcodes, prices, stock and image URL.
//
// It polls (modified, name) keyset cursors on tabItem, tabItem Price, tabBin,
// tabDeleted Document, tabComment, tabPrice List, tabFile and tabWebsite Item
// (see Sources). ERPNext writes `modified` before COMMIT and in the site's
// time zone, so every full poll checks an overlap window behind the cursor for
// rows that committed late: it compares a checksum of (name, modified) over the
// window with that of the rows it handed out, and re-reads rows only when the
// two differ; rows already handed out are skipped by (name, modified), and the
// caller drops rebuilt states whose content did not change. The detector never compares
// `modified` with the agent's clock: the only "now" it uses is the database
// server's clock converted to the site's time zone; and, for the Item Price
// rows raw SQL stamps with modified=NOW() (Price List save), the database
// session's own local time, which a second Item Price source follows.
//
// Each changed row names items: its own, or more. An Item Price row names its
// item, the variants of that item (they inherit a template's price) and, from
// its Version row, the item it was moved away from; a File or Website Item row
// the item it belongs to; a rename Comment the old and the new item code (the
// old one is sent as a delete with reason renamed or merged); a Price List
// save or rename every item with a price in it, and an Item Group rename every
// item of the group. Such large sets are streamed and built in batches of
// PageSize items; only the last batch of a page moves the cursor.
//
// The detector only reads. It knows nothing about delivery: it hands batches of
// items, with the cursor that covers them, to a callback.
package detector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the site's IANA zone must load even on hosts without /usr/share/zoneinfo

	"github.com/go-sql-driver/mysql"
)

// Sources polled for changes, in the order Poll visits them. Each has its
// own cursor.
const (
	SourceItem  = "item"       // tabItem
	SourcePrice = "item_price" // tabItem Price, in site time
	// SourcePriceServer is tabItem Price on the database session's clock:
	// the rows a Price List save stamps with modified=NOW(). Its cursor is
	// the session's local time, not site time.
	SourcePriceServer = "item_price_server_clock"
	SourceBin         = "bin"              // tabBin
	SourceDeleted     = "deleted_document" // tabDeleted Document: Item, Item Price, File, Website Item
	SourceComment     = "comment"          // tabComment: renames of Items, Price Lists, Item Groups
	SourcePriceList   = "price_list"       // tabPrice List: a save re-sends the list's items
	SourceFile        = "file"             // tabFile: files attached to Items
	SourceWebsiteItem = "website_item"     // tabWebsite Item (webshop), where the table exists
)

// Sources lists every change source, in poll order.
func Sources() []string {
	return []string{SourceComment, SourceItem, SourcePrice, SourcePriceServer, SourceBin, SourceDeleted,
		SourcePriceList, SourceFile, SourceWebsiteItem}
}

// DefaultTimeZone is what Frappe assumes when System Settings has no time_zone.
const DefaultTimeZone = "Asia/Kolkata"

// SiteError says the database answers but is not usable as configured: a
// table or column is missing, an extra field does not exist, or the time zone
// is unknown. Retrying does not help; the settings or the database must change.
type SiteError struct{ msg string }

func (e *SiteError) Error() string { return e.msg }

func siteErrorf(format string, args ...any) error {
	return &SiteError{msg: fmt.Sprintf(format, args...)}
}

// Config says what to read and how.
type Config struct {
	Selection                 // which items, prices and stock are sent
	SiteURL     string        // base URL for site-relative image paths ("/files/x.jpg"); empty keeps them relative
	ExtraFields []string      // extra tabItem columns to send, by column name
	PageSize    int           // rows per query page and items per build; default 500
	Overlap     time.Duration // how far behind the cursor every poll re-reads; default 5m
	TimeZone    string        // the site's IANA time zone; empty = read System Settings
	// Schema is the site's database: every table read is qualified by it, so
	// that the pool may be one shared by the sites of a database server (in
	// any database). Empty: the database the pool's connections are in.
	Schema string
	Logger *slog.Logger
}

// Selection says which items, price rows and warehouses are sent. Empty
// lists select everything, as ERPNext's defaults do.
type Selection struct {
	// PriceLists names the price lists whose rows are sent, exactly. Empty:
	// every Price List that is enabled and selling (tabPrice List).
	PriceLists []string
	// CustomerPrices also sends rows that name a customer; by default only
	// rows with neither customer nor supplier are sent. Rows that name a
	// supplier are never sent: a shop sells to customers.
	CustomerPrices bool
	// Warehouses names the warehouses sent; a group warehouse reports the sum
	// of its leaf warehouses. Empty: every warehouse with a Bin.
	Warehouses []string
	// ItemGroups selects items of these groups and their subgroups; empty:
	// every group.
	ItemGroups []string
	// Brands selects items of these brands; empty: every brand.
	Brands []string
	// SalesItemsOnly selects only items with is_sales_item set.
	SalesItemsOnly bool
	// SyncField names a Check column of tabItem that selects an item when set
	// (a custom field such as sync_to_shop); empty: no such column.
	SyncField string
}

// Detector reads one ERPNext site. It is not safe for concurrent use: one
// goroutine polls.
type Detector struct {
	db     *siteDB
	cfg    Config
	loc    *time.Location
	extra  []extraField
	seen   map[string]*seenSet // source -> rows handed out within the overlap window
	stats  pollStats
	logger *slog.Logger
	pages  sync.Pool  // *page: buffers of Build, reused
	store  storefront // the storefront tables and the private files logged (build_children.go)
}

// pollStats counts what polls and builds read, for tests.
type pollStats struct {
	rowsRead      int // rows read by page queries of polls
	windowRereads int // window checks whose checksums differed, so that rows were re-read
	nameLookups   int // queries of Build matching item codes with tabItem names (itemNamesQuery)
}

// New checks that the database holds the tables and columns the detector reads,
// loads the site's time zone, and returns a Detector.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Detector, error) {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	if cfg.Overlap <= 0 {
		cfg.Overlap = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sdb, err := newSiteDB(ctx, db, cfg.Schema)
	if err != nil {
		return nil, err
	}
	d := &Detector{db: sdb, cfg: cfg, logger: cfg.Logger, seen: map[string]*seenSet{}}
	if err := d.checkSchema(ctx); err != nil {
		return nil, err
	}
	if err := d.checkStorefront(ctx); err != nil {
		return nil, err
	}
	if err := checkSelection(ctx, sdb, cfg.Selection); err != nil {
		return nil, err
	}
	tz := cfg.TimeZone
	if tz == "" {
		if tz, err = siteTimeZone(ctx, sdb); err != nil {
			return nil, err
		}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, siteErrorf("load site time zone %q: %v (set erp.time_zone to an IANA name such as Asia/Kolkata)", tz, err)
	}
	d.loc = loc
	return d, nil
}

// Location is the site's time zone, in which ERPNext writes `modified`.
func (d *Detector) Location() *time.Location { return d.loc }

// SiteTimeZone reads System Settings' time_zone, or DefaultTimeZone when unset,
// as Frappe does.
func SiteTimeZone(ctx context.Context, db *sql.DB) (string, error) {
	sdb, err := newSiteDB(ctx, db, "")
	if err != nil {
		return "", err
	}
	return siteTimeZone(ctx, sdb)
}

// SiteTimeZone is SiteTimeZone of the Detector's site.
func (d *Detector) SiteTimeZone(ctx context.Context) (string, error) { return siteTimeZone(ctx, d.db) }

func siteTimeZone(ctx context.Context, db *siteDB) (string, error) {
	var tz sql.NullString
	err := db.QueryRowContext(ctx,
		"SELECT value FROM `tabSingles` WHERE doctype = 'System Settings' AND field = 'time_zone' LIMIT 1").Scan(&tz)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read System Settings time_zone: %w", err)
	}
	if !tz.Valid || strings.TrimSpace(tz.String) == "" {
		return DefaultTimeZone, nil
	}
	return strings.TrimSpace(tz.String), nil
}

// requiredColumns are the columns the detector reads, per table.
func requiredColumns() map[string][]string {
	return map[string][]string{
		"tabItem": {"name", "modified", "item_code", "item_name", "item_group", "brand", "description", "stock_uom",
			"disabled", "is_stock_item", "is_sales_item", "has_variants", "variant_of", "end_of_life", "image", "sales_uom"},
		"tabItem Price": {"name", "modified", "item_code", "price_list", "currency", "price_list_rate", "uom", "valid_from", "valid_upto",
			"customer", "supplier", "batch_no", "packing_unit", "selling", "buying"},
		"tabBin":                    {"name", "modified", "item_code", "warehouse", "actual_qty", "reserved_qty", "projected_qty"},
		"tabItem Barcode":           {"parent", "parenttype", "parentfield", "barcode", "barcode_type", "uom", "idx"},
		"tabDeleted Document":       {"name", "modified", "deleted_doctype", "deleted_name", "data"},
		"tabPrice List":             {"name", "modified", "enabled", "selling", "buying", "currency"},
		"tabWarehouse":              {"name", "is_group", "lft", "rgt", "disabled"},
		"tabItem Group":             {"name", "lft", "rgt"},
		"tabUOM Conversion Detail":  {"parent", "parenttype", "parentfield", "uom", "conversion_factor", "idx"},
		"tabItem Variant Attribute": {"parent", "parenttype", "parentfield", "attribute", "attribute_value", "idx"},
		"tabFile":                   {"name", "modified", "creation", "attached_to_doctype", "attached_to_name", "file_url", "is_private"},
		"tabComment":                {"name", "modified", "comment_type", "reference_doctype", "reference_name", "content"},
	}
}

func (d *Detector) checkSchema(ctx context.Context) error {
	rows, err := d.db.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?
		AND TABLE_NAME IN ('tabItem', 'tabItem Price', 'tabBin', 'tabItem Barcode', 'tabDeleted Document', 'tabPrice List',
		'tabWarehouse', 'tabItem Group', 'tabUOM Conversion Detail', 'tabItem Variant Attribute', 'tabFile', 'tabComment')`, d.db.schema)
	if err != nil {
		return fmt.Errorf("read ERPNext table columns: %w", err)
	}
	defer rows.Close()
	have := map[string]map[string][2]string{}
	for rows.Next() {
		var table, col, dataType, colType string
		if err := rows.Scan(&table, &col, &dataType, &colType); err != nil {
			return fmt.Errorf("read ERPNext table columns: %w", err)
		}
		if have[table] == nil {
			have[table] = map[string][2]string{}
		}
		have[table][col] = [2]string{strings.ToLower(dataType), strings.ToLower(colType)}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read ERPNext table columns: %w", err)
	}
	var missing []string
	for table, cols := range requiredColumns() {
		if have[table] == nil {
			missing = append(missing, "table `"+table+"`")
			continue
		}
		for _, c := range cols {
			if _, ok := have[table][c]; !ok {
				missing = append(missing, "`"+table+"`."+c)
			}
		}
	}
	if len(missing) > 0 {
		return siteErrorf("the database is not an ERPNext site or erp.dsn names the wrong database: missing %s", strings.Join(missing, ", "))
	}
	for _, f := range d.cfg.ExtraFields {
		t, ok := have["tabItem"][f]
		if !ok {
			return siteErrorf("erp.extra_fields: tabItem has no column %q: remove it or check its spelling", f)
		}
		if reservedField(f) {
			return siteErrorf("erp.extra_fields: %q is already sent: remove it from erp.extra_fields", f)
		}
		d.extra = append(d.extra, extraField{name: f, dataType: t[0], columnType: t[1]})
	}
	return nil
}

// PrepareDSN returns the go-sql-driver DSN the detector needs: values read as
// text (parseTime off, so `modified` and DECIMAL columns arrive exactly as
// stored), utf8mb4, client-side interpolation (one round trip per query), and
// sane timeouts. It rejects a DSN the driver cannot parse.
func PrepareDSN(dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("erp.dsn is not a go-sql-driver DSN (user:password@tcp(host:3306)/database): %s", redactErr(err, dsn))
	}
	if cfg.DBName == "" {
		return "", fmt.Errorf("erp.dsn names no database: add /<site database> after the address, as in user:password@tcp(127.0.0.1:3306)/_1bd3e0294da19198")
	}
	if _, ok := cfg.Params["time_zone"]; ok {
		return "", fmt.Errorf("erp.dsn sets time_zone: remove it; erpsync must read SQL NOW() in the zone ERPNext's own sessions use (the server's default), " +
			"since ERPNext stamps some rows with it")
	}
	cfg.ParseTime = false
	cfg.InterpolateParams = true
	cfg.Collation = "utf8mb4_unicode_ci"
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 60 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	return cfg.FormatDSN(), nil
}

// Open opens a pool for the site database at dsn (PrepareDSN's settings),
// sized for one site's detection and the commands beside it. It does not
// connect: New does, and says what is wrong.
func Open(dsn string) (*sql.DB, error) {
	prepared, err := PrepareDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", prepared)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", RedactDSN(dsn), err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxLifetime(5 * time.Minute)
	return db, nil
}

// Refusal is why the database server refused erpsync, from its error.
type Refusal int

const (
	// NotRefused: no refusal by the server (it could not be reached, say).
	NotRefused Refusal = iota
	// BadLogin: the user or password is wrong (MySQL error 1045).
	BadLogin
	// NoDatabase: the database does not exist, or the user may not use it
	// (1044, 1049).
	NoDatabase
)

// Refused classifies err: a refusal is a wrong setting, not an outage, and
// retrying does not help.
func Refused(err error) Refusal {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045:
			return BadLogin
		case 1044, 1049:
			return NoDatabase
		}
	}
	return NotRefused
}

// RedactDSN returns dsn with its password replaced, for logs and errors.
func RedactDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "xxxxx"
	}
	return cfg.FormatDSN()
}

// redactErr removes the DSN's password from an error text.
func redactErr(err error, dsn string) string {
	msg := err.Error()
	if i := strings.Index(dsn, ":"); i >= 0 {
		if j := strings.LastIndex(dsn, "@"); j > i+1 {
			msg = strings.ReplaceAll(msg, dsn[i+1:j], "xxxxx")
		}
	}
	return msg
}
