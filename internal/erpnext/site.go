package erpnext

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ModifiedLayout is how Frappe writes `modified`/`creation` (frappe.utils.now(): "%Y-%m-%d %H:%M:%S.%f").
const ModifiedLayout = "2006-01-02 15:04:05.000000"

// DefaultTimeZone is the zone Frappe assumes when System Settings has no time_zone.
const DefaultTimeZone = "Asia/Kolkata"

// adminUser is what modified_by/owner hold for writes made as Administrator (API key of the admin).
const adminUser = "Administrator"

// ErrNotFound is returned (wrapped) when the document to change does not exist.
var ErrNotFound = errors.New("not found")

// Site writes to an ERPNext database like ERPNext does. Every `modified`/`creation` it writes is
// Now() converted to TZ, naive, with microseconds (Format). Replace Now to control the timestamps.
// Each method is one transaction (DeleteItem and MergeItem then run frappe's delete_dynamic_links job in
// a second one). Empty optional strings (Brand, Image, VariantOf, UOMs of barcodes) are
// stored as NULL.
type Site struct {
	DB  *sql.DB
	TZ  *time.Location
	Now func() time.Time
}

// NewSite returns a Site on db writing timestamps in time zone tz (IANA name; "" = Frappe's default,
// Asia/Kolkata) with the real clock.
func NewSite(db *sql.DB, tz string) (*Site, error) {
	if tz == "" {
		tz = DefaultTimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("erpnext: time zone: %w", err)
	}
	return &Site{DB: db, TZ: loc, Now: time.Now}, nil
}

// Format renders t as this site's `modified` value: t in the site's time zone, "2006-01-02 15:04:05.000000".
func (s *Site) Format(t time.Time) string {
	loc := s.TZ
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(ModifiedLayout)
}

// now is frappe.utils.now().
func (s *Site) now() string {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	return s.Format(now())
}

// today is frappe.utils.today() (the "Today" default of Date fields).
func (s *Site) today() string { return s.now()[:10] }

// Item is the part of an ERPNext Item the sync cares about. Code is both name and item_code.
//
// SaveItem writes the child tables Barcodes, UOMs and Attributes as a save does: every save rewrites
// them. SalesUOM "" is NULL; EndOfLife is a date (YYYY-MM-DD), "" meaning the DocType default 2099-12-31.
type Item struct {
	Code, Name, Group, Brand, Description, StockUOM, Image string
	Disabled, HasVariants                                  bool
	VariantOf                                              string
	Barcodes                                               []Barcode
	// UOMs are the UOM Conversion Detail rows. Like add_default_uom_in_conversion_factor_table, SaveItem
	// appends the stock UOM with factor 1 when it is missing, and drops the given rows when the stock UOM
	// of an existing item changes.
	UOMs      []UOM
	SalesUOM  string
	EndOfLife string
	// Attributes are the Item Variant Attribute rows: on a template the attribute names (Value ""), on a
	// variant the attribute values. A new variant's rows get variant_of; rows without a value are dropped
	// from a new variant (validate_variant_attributes).
	Attributes []Attribute
}

// UOM is a row of the Item's UOM conversion table (tabUOM Conversion Detail): Factor is decimal text,
// how many stock UOMs one UOM holds.
type UOM struct {
	UOM, Factor string
}

// Attribute is a row of the Item's attributes table (tabItem Variant Attribute).
type Attribute struct {
	Attribute, Value string
}

// Barcode is a row of the Item's barcodes child table (tabItem Barcode).
type Barcode struct {
	Barcode, Type, UOM string
}

// Price is an Item Price. Rate is exact decimal text ("19.99"); UOM "" means the item's stock UOM.
type Price struct {
	PriceList, Currency, Rate string
	UOM                       string
}

// Stock is a Bin's quantities in decimal text. "" means 0, except ProjectedQty: "" means
// ActualQty − ReservedQty (the other parts of ERPNext's projected qty are 0 here).
type Stock struct {
	Warehouse, ActualQty, ReservedQty, ProjectedQty string
}

var decimalRE = regexp.MustCompile(`^-?[0-9]{1,12}(\.[0-9]{1,9})?$`)

func checkDecimal(what, v string) error {
	if !decimalRE.MatchString(v) {
		return fmt.Errorf("erpnext: %s %q is not a decimal(21,9)", what, v)
	}
	return nil
}

// SaveItem inserts or updates the Item and rewrites its child tables (barcodes, uoms, attributes) with
// the Item's new `modified` (Frappe's save, Document.update_child_table: existing child rows keep their
// name, removed ones are deleted, new ones get creation = the Item's creation). Like ERPNext it fills
// item_name from the code and description from item_name when empty, adds the stock UOM to the UOM
// table, and copies item_name, description and brand to the item's Item Price rows with raw SQL
// (Item.update_item_price), which leaves their `modified` alone.
func (s *Site) SaveItem(ctx context.Context, it Item) error {
	if it.Code == "" || strings.TrimSpace(it.Code) != it.Code {
		return fmt.Errorf("erpnext: invalid item code %q", it.Code)
	}
	if it.Group == "" || it.StockUOM == "" {
		return fmt.Errorf("erpnext: item %s: Group and StockUOM are mandatory", it.Code)
	}
	if it.Name == "" {
		it.Name = it.Code
	}
	if it.Description == "" {
		it.Description = it.Name
	}
	if err := checkChildren(it); err != nil {
		return err
	}
	endOfLife := it.EndOfLife
	if endOfLife == "" {
		endOfLife = defaultEndOfLife
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if it.VariantOf != "" {
			if it.VariantOf == it.Code {
				return fmt.Errorf("erpnext: item %s cannot be a variant of itself", it.Code)
			}
			if err := exists(ctx, tx, "SELECT 1 FROM `tabItem` WHERE `name` = ? LOCK IN SHARE MODE", it.VariantOf); err != nil {
				return fmt.Errorf("erpnext: template %s: %w", it.VariantOf, err)
			}
		}
		now := s.now()
		var oldUOM sql.NullString
		err := tx.QueryRowContext(ctx, "SELECT `stock_uom` FROM `tabItem` WHERE `name` = ? FOR UPDATE", it.Code).Scan(&oldUOM)
		isNew := errors.Is(err, sql.ErrNoRows)
		switch {
		case isNew:
			_, err = tx.ExecContext(ctx, "INSERT INTO `tabItem` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
				"`item_code`, `item_name`, `item_group`, `stock_uom`, `disabled`, `has_variants`, `variant_of`, `brand`, `description`, `image`, "+
				"`sales_uom`, `end_of_life`) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				it.Code, now, now, adminUser, adminUser,
				it.Code, it.Name, it.Group, it.StockUOM, it.Disabled, it.HasVariants, null(it.VariantOf), null(it.Brand), it.Description, null(it.Image),
				null(it.SalesUOM), endOfLife)
		case err == nil:
			_, err = tx.ExecContext(ctx, "UPDATE `tabItem` SET `modified` = ?, `modified_by` = ?, `item_name` = ?, `item_group` = ?, `stock_uom` = ?, "+
				"`disabled` = ?, `has_variants` = ?, `variant_of` = ?, `brand` = ?, `description` = ?, `image` = ?, `sales_uom` = ?, `end_of_life` = ? "+
				"WHERE `name` = ?",
				now, adminUser, it.Name, it.Group, it.StockUOM, it.Disabled, it.HasVariants, null(it.VariantOf), null(it.Brand), it.Description, null(it.Image),
				null(it.SalesUOM), endOfLife, it.Code)
		}
		if err != nil {
			return fmt.Errorf("erpnext: saving item %s: %w", it.Code, err)
		}
		if err := s.writeChildren(ctx, tx, it, now, isNew, !isNew && oldUOM.String != it.StockUOM); err != nil {
			return err
		}
		// Item.on_update → update_item_price(): raw UPDATE, modified untouched.
		if _, err := tx.ExecContext(ctx, "UPDATE `tabItem Price` SET `item_name` = ?, `item_description` = ?, `brand` = ? WHERE `item_code` = ?",
			it.Name, it.Description, null(it.Brand), it.Code); err != nil {
			return fmt.Errorf("erpnext: item %s: updating Item Price: %w", it.Code, err)
		}
		return nil
	})
}

// defaultEndOfLife is the default of Item.end_of_life in item.json.
const defaultEndOfLife = "2099-12-31"

// priceListFlags is what Seed copies from the Price List without reading it: a list whose name contains
// "Buying" is a buying list, any other a selling list.
func priceListFlags(priceList string) (buying, selling bool) {
	if strings.Contains(strings.ToLower(priceList), "buying") {
		return true, false
	}
	return false, true
}

// ErrPriceListDisabled is returned (wrapped) by SetPrice for a disabled price list.
var ErrPriceListDisabled = errors.New("price list is disabled")

// listFlags reads buying and selling of the Price List, as ItemPrice.update_price_list_details does; a
// disabled list is refused ("The price list … does not exist or is disabled"). A list missing from
// tabPrice List gets priceListFlags, so that tests need not create every list they name.
func listFlags(ctx context.Context, tx *sql.Tx, priceList string) (buying, selling bool, err error) {
	var enabled bool
	err = tx.QueryRowContext(ctx, "SELECT `enabled`, `buying`, `selling` FROM `tabPrice List` WHERE `name` = ? LOCK IN SHARE MODE", priceList).
		Scan(&enabled, &buying, &selling)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		buying, selling = priceListFlags(priceList)
		return buying, selling, nil
	case err != nil:
		return false, false, fmt.Errorf("erpnext: price list %s: %w", priceList, err)
	case !enabled:
		return false, false, fmt.Errorf("erpnext: price list %s: %w", priceList, ErrPriceListDisabled)
	}
	return buying, selling, nil
}

// SetPrice creates or updates the Item Price of (code, p.PriceList) the way a save from the desk or API
// does: `modified` bumped, item_name/brand/item_description copied from the Item, buying/selling from
// the Price List (listFlags), a new row named with a random 10-character hash, creation = modified and
// valid_from = today.
func (s *Site) SetPrice(ctx context.Context, code string, p Price) error {
	if p.PriceList == "" || p.Currency == "" {
		return fmt.Errorf("erpnext: price of %s: PriceList and Currency are mandatory", code)
	}
	if err := checkDecimal("rate", p.Rate); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		buying, selling, err := listFlags(ctx, tx, p.PriceList)
		if err != nil {
			return err
		}
		var itemName, brand, description, stockUOM sql.NullString
		err = tx.QueryRowContext(ctx, "SELECT `item_name`, `brand`, `description`, `stock_uom` FROM `tabItem` WHERE `name` = ? LOCK IN SHARE MODE", code).
			Scan(&itemName, &brand, &description, &stockUOM)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("erpnext: price of item %s: item %w", code, ErrNotFound)
		}
		if err != nil {
			return err
		}
		uom := p.UOM
		if uom == "" {
			uom = stockUOM.String
		}
		now := s.now()
		var name string
		err = tx.QueryRowContext(ctx, "SELECT `name` FROM `tabItem Price` WHERE `item_code` = ? AND `price_list` = ? ORDER BY `creation`, `name` LIMIT 1 FOR UPDATE",
			code, p.PriceList).Scan(&name)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			err = insertHashNamed(ctx, tx, "INSERT INTO `tabItem Price` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
				"`item_code`, `uom`, `item_name`, `brand`, `item_description`, `price_list`, `buying`, `selling`, `currency`, `price_list_rate`, `valid_from`) "+
				"VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				now, now, adminUser, adminUser, code, uom, itemName, brand, description, p.PriceList, buying, selling, p.Currency, p.Rate, s.today())
		case err == nil:
			_, err = tx.ExecContext(ctx, "UPDATE `tabItem Price` SET `modified` = ?, `modified_by` = ?, `uom` = ?, `item_name` = ?, `brand` = ?, "+
				"`item_description` = ?, `buying` = ?, `selling` = ?, `currency` = ?, `price_list_rate` = ? WHERE `name` = ?",
				now, adminUser, uom, itemName, brand, description, buying, selling, p.Currency, p.Rate, name)
		}
		if err != nil {
			return fmt.Errorf("erpnext: price of %s in %s: %w", code, p.PriceList, err)
		}
		return nil
	})
}

// DeletePrice deletes the Item Price rows of (code, priceList) like frappe.delete_doc: one Deleted Document
// row each (deleted_doctype 'Item Price', data = the row as JSON). ErrNotFound when there is none.
func (s *Site) DeletePrice(ctx context.Context, code, priceList string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		docs, err := loadDocs(ctx, tx, "Item Price", "SELECT * FROM `tabItem Price` WHERE `item_code` = ? AND `price_list` = ? ORDER BY `creation`, `name` FOR UPDATE", code, priceList)
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			return fmt.Errorf("erpnext: Item Price of %s in %s: %w", code, priceList, ErrNotFound)
		}
		for _, d := range docs {
			name := d["name"].(string)
			if err := s.addDeletedDocument(ctx, tx, "Item Price", name, d); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM `tabItem Price` WHERE `name` = ?", name); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetStock creates or updates the Bin of (code, st.Warehouse) like Bin.update_qty: the quantities and
// `modified` are always written, even when unchanged. A new Bin gets creation = modified and the item's
// stock UOM.
func (s *Site) SetStock(ctx context.Context, code string, st Stock) error {
	if st.Warehouse == "" {
		return fmt.Errorf("erpnext: stock of %s: Warehouse is mandatory", code)
	}
	actual, reserved, projected := orZero(st.ActualQty), orZero(st.ReservedQty), st.ProjectedQty
	for what, v := range map[string]string{"actual_qty": actual, "reserved_qty": reserved} {
		if err := checkDecimal(what, v); err != nil {
			return err
		}
	}
	if projected == "" {
		projected = subDecimal(actual, reserved)
	} else if err := checkDecimal("projected_qty", projected); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var stockUOM sql.NullString
		err := tx.QueryRowContext(ctx, "SELECT `stock_uom` FROM `tabItem` WHERE `name` = ? LOCK IN SHARE MODE", code).Scan(&stockUOM)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("erpnext: stock of item %s: item %w", code, ErrNotFound)
		}
		if err != nil {
			return err
		}
		now := s.now()
		var name string
		err = tx.QueryRowContext(ctx, "SELECT `name` FROM `tabBin` WHERE `item_code` = ? AND `warehouse` = ? FOR UPDATE", code, st.Warehouse).Scan(&name)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			err = insertHashNamed(ctx, tx, "INSERT INTO `tabBin` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
				"`item_code`, `warehouse`, `actual_qty`, `reserved_qty`, `projected_qty`, `stock_uom`) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?)",
				now, now, adminUser, adminUser, code, st.Warehouse, actual, reserved, projected, stockUOM)
		case err == nil:
			_, err = tx.ExecContext(ctx, "UPDATE `tabBin` SET `modified` = ?, `modified_by` = ?, `actual_qty` = ?, `reserved_qty` = ?, `projected_qty` = ? WHERE `name` = ?",
				now, adminUser, actual, reserved, projected, name)
		}
		if err != nil {
			return fmt.Errorf("erpnext: stock of %s in %s: %w", code, st.Warehouse, err)
		}
		return nil
	})
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// subDecimal returns a − b for decimal texts that passed checkDecimal, with 9 decimals.
func subDecimal(a, b string) string {
	x, _ := new(big.Rat).SetString(a)
	y, _ := new(big.Rat).SetString(b)
	return x.Sub(x, y).FloatString(9)
}

// decimalCmp compares decimal texts that passed checkDecimal.
func decimalCmp(a, b string) int {
	x, _ := new(big.Rat).SetString(a)
	y, _ := new(big.Rat).SetString(b)
	return x.Cmp(y)
}

// DeleteItem deletes the Item like frappe.delete_doc("Item", code): Item.on_trash removes its Bin and Item
// Price rows with raw SQL (no Deleted Document for them) and deletes its variants the same way (each with
// its own Deleted Document); then the Item and its child rows (barcodes, uoms, attributes) are deleted,
// its attached Files are deleted (remove_all: one Deleted Document each, no comment, as the Item is gone),
// one Deleted Document row is written for the Item (data = JSON of the Item with its child tables) and a
// 'Deleted' Comment (insert_feed). One transaction; after it, as the delete_dynamic_links job does, the
// Comment and Version rows that reference the deleted items are deleted. ErrNotFound when missing.
func (s *Site) DeleteItem(ctx context.Context, code string) error {
	var deleted []string
	if err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		deleted, err = s.deleteItem(ctx, tx, code, 0)
		return err
	}); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return deleteDynamicLinks(ctx, tx, deleted) })
}

// deleteItem deletes the Item code and its variants and returns the names deleted.
func (s *Site) deleteItem(ctx context.Context, tx *sql.Tx, code string, depth int) ([]string, error) {
	if depth > 2 {
		return nil, fmt.Errorf("erpnext: deleting %s: variant chain too deep", code)
	}
	docs, err := loadDocs(ctx, tx, "Item", "SELECT * FROM `tabItem` WHERE `name` = ? FOR UPDATE", code)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("erpnext: item %s: %w", code, ErrNotFound)
	}
	doc := docs[0]
	for _, spec := range itemChildTables {
		rows, err := loadDocs(ctx, tx, childDoctype(spec.table), "SELECT * FROM `"+spec.table+"` WHERE `parent` = ? AND `parenttype` = 'Item' AND `parentfield` = ? ORDER BY `idx`",
			code, spec.field)
		if err != nil {
			return nil, err
		}
		doc[spec.field] = rows
	}

	// Item.on_trash
	for _, q := range []string{"DELETE FROM `tabBin` WHERE `item_code` = ?", "DELETE FROM `tabItem Price` WHERE `item_code` = ?"} {
		if _, err := tx.ExecContext(ctx, q, code); err != nil {
			return nil, fmt.Errorf("erpnext: deleting item %s: %w", code, err)
		}
	}
	variants, err := queryStrings(ctx, tx, "SELECT `name` FROM `tabItem` WHERE `variant_of` = ? ORDER BY `name`", code)
	if err != nil {
		return nil, err
	}
	deleted := []string{code}
	for _, v := range variants {
		names, err := s.deleteItem(ctx, tx, v, depth+1)
		if err != nil {
			return nil, err
		}
		deleted = append(deleted, names...)
	}

	// delete_from_table: the row and its child rows.
	for _, spec := range itemChildTables {
		if _, err := tx.ExecContext(ctx, "DELETE FROM `"+spec.table+"` WHERE `parent` = ? AND `parenttype` = 'Item'", code); err != nil {
			return nil, fmt.Errorf("erpnext: deleting item %s: %w", code, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM `tabItem` WHERE `name` = ?", code); err != nil {
		return nil, fmt.Errorf("erpnext: deleting item %s: %w", code, err)
	}
	// remove_all(from_delete=True): File.on_trash finds no Item to comment on.
	if err := s.deleteFiles(ctx, tx, code, false); err != nil {
		return nil, err
	}
	if err := s.addDeletedDocument(ctx, tx, "Item", code, doc); err != nil {
		return nil, err
	}
	if err := s.addComment(ctx, tx, comment{kind: "Deleted", doctype: "Item", subject: "Item " + code}); err != nil {
		return nil, err
	}
	return deleted, nil
}

// childDoctype is the DocType of a child table ("tabItem Barcode" → "Item Barcode").
func childDoctype(table string) string { return strings.TrimPrefix(table, "tab") }

// deleteDynamicLinks is frappe's delete_dynamic_links job for deleted Items: their Comments and Versions
// are deleted (raw). The 'Deleted' Comments have no reference_name and stay.
func deleteDynamicLinks(ctx context.Context, tx *sql.Tx, items []string) error {
	if len(items) == 0 {
		return nil
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(items)), ", ")
	args := make([]any, len(items))
	for i, c := range items {
		args[i] = c
	}
	for _, q := range []string{
		"DELETE FROM `tabComment` WHERE `reference_doctype` = 'Item' AND `reference_name` IN (" + in + ")",
		"DELETE FROM `tabVersion` WHERE `ref_doctype` = 'Item' AND `docname` IN (" + in + ")",
	} {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("erpnext: deleting the links of deleted items: %w", err)
		}
	}
	return nil
}

// addDeletedDocument is frappe's add_to_deleted_document: a db_insert with creation = modified = now.
func (s *Site) addDeletedDocument(ctx context.Context, tx *sql.Tx, doctype, name string, doc map[string]any) error {
	now := s.now()
	err := insertHashNamed(ctx, tx, "INSERT INTO `tabDeleted Document` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
		"`deleted_name`, `deleted_doctype`, `restored`, `data`) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, 0, ?)",
		now, now, adminUser, adminUser, name, doctype, frappeJSON(doc))
	if err != nil {
		return fmt.Errorf("erpnext: Deleted Document for %s %s: %w", doctype, name, err)
	}
	return nil
}

// RawPriceUpdate sets price_list_rate of (code, priceList) with a raw UPDATE that leaves `modified` alone,
// as scripts and some ERPNext paths do: a change only a reconciliation can see. ErrNotFound when there
// is no such row.
func (s *Site) RawPriceUpdate(ctx context.Context, code, priceList, rate string) error {
	if err := checkDecimal("rate", rate); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "SELECT 1 FROM `tabItem Price` WHERE `item_code` = ? AND `price_list` = ? LIMIT 1 FOR UPDATE", code, priceList); err != nil {
			return fmt.Errorf("erpnext: Item Price of %s in %s: %w", code, priceList, err)
		}
		_, err := tx.ExecContext(ctx, "UPDATE `tabItem Price` SET `price_list_rate` = ? WHERE `item_code` = ? AND `price_list` = ?", rate, code, priceList)
		return err
	})
}

func (s *Site) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("erpnext: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("erpnext: commit: %w", err)
	}
	return nil
}

// null maps "" to SQL NULL.
func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// exists returns nil when the query yields a row, ErrNotFound when it yields none.
func exists(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	var one int
	err := tx.QueryRowContext(ctx, q, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

func queryStrings(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// newHash is frappe.generate_hash(length=10): 10 random lower-case hex digits.
func newHash() string {
	var b [5]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// insertHashNamed runs an INSERT whose first parameter is the row name, with a fresh random hash, and
// retries with another hash on a primary key clash (as Frappe's db_insert does for hash names).
func insertHashNamed(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	args = append([]any{nil}, args...)
	for attempt := 0; ; attempt++ {
		args[0] = newHash()
		_, err := tx.ExecContext(ctx, q, args...)
		var me *mysql.MySQLError
		if err != nil && attempt < 5 && errors.As(err, &me) && me.Number == 1062 && strings.Contains(me.Message, "'PRIMARY'") {
			continue
		}
		return err
	}
}

// loadDocs reads rows as Frappe's doc.as_dict() holds them: decimals as floats, ints as ints, datetimes as
// str(datetime), "doctype" added, and the _user_tags/_comments/_assign/_liked_by columns left out unless set.
func loadDocs(ctx context.Context, tx *sql.Tx, doctype, q string, args ...any) ([]map[string]any, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("erpnext: reading %s: %w", doctype, err)
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	var docs []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		doc := map[string]any{"doctype": doctype}
		for i, c := range cols {
			v := pyValue(c.DatabaseTypeName(), vals[i])
			if strings.HasPrefix(c.Name(), "_") && (v == nil || v == "") {
				continue
			}
			doc[c.Name()] = v
		}
		docs = append(docs, doc)
	}
	return docs, rows.Err()
}

// pyValue converts a scanned column value to what Frappe's MariaDB layer returns for it.
func pyValue(dbType string, v any) any {
	if v == nil {
		return nil
	}
	if t, ok := v.(time.Time); ok { // DSN with parseTime=true
		if dbType == "DATE" {
			return t.Format(time.DateOnly)
		}
		v = t.Format(ModifiedLayout)
	}
	var s string
	switch x := v.(type) {
	case []byte:
		s = string(x)
	case string:
		s = x
	case int64:
		return x
	case float64:
		return x
	default:
		s = fmt.Sprint(x)
	}
	switch dbType {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	case "DECIMAL", "FLOAT", "DOUBLE":
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	case "DATETIME", "TIMESTAMP":
		// str(datetime): microseconds only when non-zero.
		return strings.TrimSuffix(s, ".000000")
	}
	return s
}
