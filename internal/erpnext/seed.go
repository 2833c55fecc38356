package erpnext

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"math/rand/v2"
	"strings"
)

// Seed price lists and warehouses.
const (
	PriceListSelling   = "Standard Selling"
	PriceListWholesale = "Wholesale"
	PriceListBuying    = "Standard Buying"
	WarehouseStores    = "Stores - AC"
	WarehouseFinished  = "Finished Goods - AC"
	WarehouseTransit   = "Transit - AC"
	// WarehouseAll is the group warehouse (the company's root) that Seed puts the three above under.
	WarehouseAll = "All Warehouses - AC"
	// SeedCompany is the company of the seed's warehouses (abbreviation AC).
	SeedCompany = "Acme Corporation"
)

// SeedWarehouses are the warehouses Seed creates, in the order SaveWarehouse would create them: the group
// WarehouseAll and its leaves Stores, Finished Goods and Transit.
func SeedWarehouses() []Warehouse {
	return []Warehouse{
		{Name: WarehouseAll, Company: SeedCompany, IsGroup: true},
		{Name: WarehouseStores, Parent: WarehouseAll, Company: SeedCompany},
		{Name: WarehouseFinished, Parent: WarehouseAll, Company: SeedCompany},
		{Name: WarehouseTransit, Parent: WarehouseAll, Company: SeedCompany},
	}
}

const seedKey = 0x45525053594e43 // "ERPSYNC": the fixed seed of the sample data

var (
	seedGroups = [...]string{"Products", "Raw Material", "Sub Assemblies", "Consumable", "Beverages", "Café & Bakery", "Services"}
	seedBrands = [...]string{"", "Acme", "Nestlé", "Ньютон", "Brand <X> & Y", "Umoja"}
	seedUOMs   = [...]string{"Nos", "Nos", "Nos", "Kg", "Box", "Litre"}
	seedAdjs   = [...]string{"Blue", "Large", "Organic", "Premium", "Compact", "Classic", "Spicy", "Eco"}
	seedNouns  = [...]string{"Widget", "Coffee Beans", "Tea Leaves", "Lamp", "Bolt M8", "Notebook", "Cable 2m", "Soap"}
)

// pinnedRates are the Standard Selling, Wholesale and Standard Buying rates of items 1..3, extremes for tests.
func pinnedRates(i int) ([3]string, bool) {
	switch i {
	case 1:
		return [3]string{"0.100000000", "0.090000000", "0.050000000"}, true
	case 2:
		return [3]string{"1234567.891000000", "1111111.101900000", "999999.999999999"}, true
	case 3:
		return [3]string{"99999999999.999999999", "0.000000001", "12.345678901"}, true
	}
	return [3]string{}, false
}

// SeedItem returns the sample item number i (1-based) as Seed writes it: the item, its prices and its
// stock (one Stock per warehouse). The values depend on i only, so tests can compute what Seed wrote.
// Decimal texts have 9 decimals, as the decimal(21,9) columns return them.
//
// Every 50 items, item 50k+10 is a template (HasVariants, no barcodes, no stock) and items 50k+11..13 are
// its variants. Items 1..3 carry pinned extreme prices (0.100000000, 1234567.891000000,
// 99999999999.999999999, 0.000000001, ...).
func SeedItem(i int) (Item, []Price, []Stock) {
	r := rand.New(rand.NewPCG(seedKey, uint64(i)))
	code := fmt.Sprintf("ITEM-%05d", i)
	var name string
	switch i % 10 {
	case 0:
		name = fmt.Sprintf("Café <Deluxe> & Co %d", i)
	case 3:
		name = fmt.Sprintf("Ньютон %d", i)
	case 5:
		name = fmt.Sprintf("日本茶 %d", i)
	case 7:
		name = fmt.Sprintf("Party Pack 🎉 %d", i)
	default:
		name = fmt.Sprintf("%s %s %d", seedAdjs[r.IntN(len(seedAdjs))], seedNouns[r.IntN(len(seedNouns))], i)
	}
	it := Item{
		Code:     code,
		Name:     name,
		Group:    seedGroups[r.IntN(len(seedGroups))],
		Brand:    seedBrands[r.IntN(len(seedBrands))],
		StockUOM: seedUOMs[r.IntN(len(seedUOMs))],
		Disabled: i%37 == 0,
	}
	it.Description = fmt.Sprintf(`<div class="ql-editor read-mode"><p>%s</p><p>Pack of <strong>%d</strong> &amp; &lt;fresh&gt;, ships in 24&nbsp;h.</p></div>`,
		html.EscapeString(name), 1+r.IntN(24))
	switch i % 20 {
	case 0:
		it.Image = ""
	case 1:
		it.Image = fmt.Sprintf("https://cdn.example.com/erp/%s.png", strings.ToLower(code))
	case 2:
		it.Image = fmt.Sprintf("/files/%s (1).jpg", strings.ToLower(code))
	default:
		it.Image = fmt.Sprintf("/files/%s.jpg", strings.ToLower(code))
	}
	template := i%50 == 10
	switch {
	case template:
		it.HasVariants = true
	case i%50 >= 11 && i%50 <= 13:
		it.VariantOf = fmt.Sprintf("ITEM-%05d", i-i%50+10)
	}
	if !template {
		for j, nb := 0, r.IntN(3); j < nb; j++ {
			b := Barcode{UOM: it.StockUOM}
			if j == 0 {
				b.Type, b.Barcode = "EAN", checkDigit(fmt.Sprintf("2%011d", i))
			} else {
				b.Type, b.Barcode = "UPC-A", checkDigit(fmt.Sprintf("0%010d", i))
			}
			if i%7 == 0 {
				b.Type, b.UOM = "", ""
			}
			it.Barcodes = append(it.Barcodes, b)
		}
	}

	var prices []Price
	rates := [3]string{seedRate(r), seedRate(r), seedRate(r)}
	if p, ok := pinnedRates(i); ok {
		rates = p
	}
	if i%23 != 0 {
		prices = append(prices, Price{PriceList: PriceListSelling, Currency: "KES", Rate: rates[0], UOM: it.StockUOM})
	}
	if i%2 == 0 || i <= 3 {
		prices = append(prices, Price{PriceList: PriceListWholesale, Currency: "KES", Rate: rates[1], UOM: it.StockUOM})
	}
	if i%3 != 0 || i <= 3 {
		prices = append(prices, Price{PriceList: PriceListBuying, Currency: "KES", Rate: rates[2], UOM: it.StockUOM})
	}

	var stock []Stock
	if !template {
		whs := []string{WarehouseStores, WarehouseFinished}
		if i%97 == 0 {
			whs = append(whs, WarehouseTransit)
		}
		for _, wh := range whs {
			actual := fmt.Sprintf("%d.000000000", r.IntN(500))
			if it.StockUOM == "Kg" || it.StockUOM == "Litre" {
				actual = fmt.Sprintf("%d.%03d000000", r.IntN(500), r.IntN(1000))
			}
			if i%101 == 0 {
				actual = "-" + actual // negative stock is allowed by a setting
			}
			reserved := "0.000000000"
			if r.IntN(4) == 0 {
				reserved = fmt.Sprintf("%d.000000000", r.IntN(10))
			}
			stock = append(stock, Stock{Warehouse: wh, ActualQty: actual, ReservedQty: reserved, ProjectedQty: subDecimal(actual, reserved)})
		}
	}
	return it, prices, stock
}

// seedRate draws a price with 9 decimals: whole, .50, cents or all nine places used.
func seedRate(r *rand.Rand) string {
	whole := r.IntN(100000)
	switch r.IntN(4) {
	case 0:
		return fmt.Sprintf("%d.000000000", whole)
	case 1:
		return fmt.Sprintf("%d.500000000", whole)
	case 2:
		return fmt.Sprintf("%d.%02d0000000", whole, r.IntN(100))
	default:
		return fmt.Sprintf("%d.%09d", whole, r.IntN(1000000000))
	}
}

// checkDigit appends the GS1 check digit to digits (EAN-13 from 12 digits, UPC-A from 11).
func checkDigit(digits string) string {
	sum := 0
	for k := 0; k < len(digits); k++ {
		d := int(digits[len(digits)-1-k] - '0')
		if k%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return digits + string(rune('0'+(10-sum%10)%10))
}

// seedNames hands out deterministic, unique row names that look like Frappe's 10-hex-digit hashes.
// The first three digits grow with the item number (i/n of 0x000..0xfff) and the other seven are a hash:
// each batch then inserts into a narrow range of the primary key instead of all over it, which keeps a
// 100k-item seed within a small buffer pool (about 3x faster than uniformly random names).
type seedNames struct {
	used map[string]bool
	n    int
}

func (n *seedNames) name(i int, parts ...any) string {
	h := sha256.Sum256([]byte(fmt.Sprint(append(parts, i)...)))
	prefix := fmt.Sprintf("%03x", i*4096/(n.n+1))
	for {
		s := prefix + hex.EncodeToString(h[:4])[:7]
		if !n.used[s] {
			n.used[s] = true
			return s
		}
		h = sha256.Sum256(h[:])
	}
}

// Seed inserts the sample items 1..n (SeedItem) with their barcodes, prices and stock, in multi-row
// INSERTs, 500 items per transaction. Every row's creation and modified is the site clock at the time
// the row is built (many rows share a value with a coarse clock, as in a bulk load; an item and its
// barcodes always share one). Run it on a site without these items. The rows, names included, depend
// only on n and the clock.
//
// On a site without warehouses, the first transaction also inserts SeedWarehouses as SaveWarehouse
// would (the nested set included), stamped like item 1, so that the clock is read as often as without
// them. Missing ones on a site that has other warehouses are saved with SaveWarehouse after the items.
func (s *Site) Seed(ctx context.Context, n int) error {
	const chunk = 500
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("erpnext: seed: %w", err)
	}
	defer conn.Close()
	missing, empty, err := missingWarehouses(ctx, conn)
	if err != nil {
		return fmt.Errorf("erpnext: seed: %w", err)
	}
	names := &seedNames{used: map[string]bool{}, n: n}
	for lo := 1; lo <= n; lo += chunk {
		hi := min(lo+chunk-1, n)
		b := newSeedBatch()
		for i := lo; i <= hi; i++ {
			now := s.addSeedItem(b, names, i)
			if i == 1 && empty {
				addSeedWarehouses(b, now)
				missing = nil
			}
		}
		if err := b.exec(ctx, conn); err != nil {
			return fmt.Errorf("erpnext: seed items %d..%d: %w", lo, hi, err)
		}
	}
	if n == 0 {
		return nil
	}
	for _, w := range missing {
		if err := s.SaveWarehouse(ctx, w); err != nil {
			return fmt.Errorf("erpnext: seed: %w", err)
		}
	}
	return nil
}

// missingWarehouses returns the SeedWarehouses the site lacks, and whether it has no warehouse at all.
func missingWarehouses(ctx context.Context, conn *sql.Conn) ([]Warehouse, bool, error) {
	var total int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM `tabWarehouse`").Scan(&total); err != nil {
		return nil, false, fmt.Errorf("reading warehouses: %w", err)
	}
	var missing []Warehouse
	for _, w := range SeedWarehouses() {
		var one int
		err := conn.QueryRowContext(ctx, "SELECT 1 FROM `tabWarehouse` WHERE `name` = ?", w.Name).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			missing = append(missing, w)
		} else if err != nil {
			return nil, false, fmt.Errorf("reading warehouse %s: %w", w.Name, err)
		}
	}
	return missing, total == 0, nil
}

// addSeedWarehouses adds SeedWarehouses to b as SaveWarehouse leaves them on an empty table: the group
// is the root (lft 1, rgt 8, empty old_parent), the leaves follow in order (2-3, 4-5, 6-7).
func addSeedWarehouses(b *seedBatch, now string) {
	for k, w := range SeedWarehouses() {
		lft, rgt := 2*k, 2*k+1
		if w.IsGroup {
			lft, rgt = 1, 2*len(SeedWarehouses())
		}
		b.warehouses.add(w.Name, now, now, adminUser, adminUser, warehouseName(w.Name), w.IsGroup, null(w.Parent), w.Company,
			lft, rgt, w.Parent)
	}
}

// addSeedItem adds item i to b and returns the timestamp of its row.
func (s *Site) addSeedItem(b *seedBatch, names *seedNames, i int) string {
	it, prices, stock := SeedItem(i)
	now := s.now()
	var image any
	switch {
	case it.Image != "":
		image = it.Image
	case i%40 == 0:
		image = "" // cleared in the desk: '' rather than NULL
	}
	b.items.add(it.Code, now, now, adminUser, adminUser, it.Code, it.Name, it.Group, it.StockUOM, it.Disabled, it.HasVariants,
		null(it.VariantOf), null(it.Brand), it.Description, image)
	for j, bc := range it.Barcodes {
		b.barcodes.add(names.name(i, "Item Barcode", j), now, now, adminUser, adminUser, j+1, bc.Barcode, null(bc.Type), null(bc.UOM), it.Code)
	}
	for _, p := range prices {
		buying, selling := priceListFlags(p.PriceList)
		now := s.now()
		b.prices.add(names.name(i, "Item Price", p.PriceList), now, now, adminUser, adminUser, it.Code, p.UOM, it.Name, null(it.Brand), it.Description,
			p.PriceList, buying, selling, p.Currency, p.Rate, now[:10])
	}
	for _, st := range stock {
		now := s.now()
		b.bins.add(names.name(i, "Bin", st.Warehouse), now, now, adminUser, adminUser, it.Code, st.Warehouse, st.ActualQty, st.ReservedQty, st.ProjectedQty, it.StockUOM)
	}
	return now
}

// seedBatch collects rows per table for multi-row INSERTs.
type seedBatch struct{ items, barcodes, prices, bins, warehouses *multiInsert }

func newSeedBatch() *seedBatch {
	return &seedBatch{
		items: &multiInsert{head: "INSERT INTO `tabItem` (`name`, `creation`, `modified`, `modified_by`, `owner`, " +
			"`item_code`, `item_name`, `item_group`, `stock_uom`, `disabled`, `has_variants`, `variant_of`, `brand`, `description`, `image`) VALUES ", cols: 15},
		barcodes: &multiInsert{head: "INSERT INTO `tabItem Barcode` (`name`, `creation`, `modified`, `modified_by`, `owner`, `idx`, " +
			"`barcode`, `barcode_type`, `uom`, `parent`, `parentfield`, `parenttype`) VALUES ", cols: 10, tail: ", 'barcodes', 'Item'"},
		prices: &multiInsert{head: "INSERT INTO `tabItem Price` (`name`, `creation`, `modified`, `modified_by`, `owner`, " +
			"`item_code`, `uom`, `item_name`, `brand`, `item_description`, `price_list`, `buying`, `selling`, `currency`, `price_list_rate`, `valid_from`) VALUES ", cols: 16},
		bins: &multiInsert{head: "INSERT INTO `tabBin` (`name`, `creation`, `modified`, `modified_by`, `owner`, " +
			"`item_code`, `warehouse`, `actual_qty`, `reserved_qty`, `projected_qty`, `stock_uom`) VALUES ", cols: 11},
		warehouses: &multiInsert{head: "INSERT INTO `tabWarehouse` (`name`, `creation`, `modified`, `modified_by`, `owner`, " +
			"`warehouse_name`, `is_group`, `parent_warehouse`, `company`, `lft`, `rgt`, `old_parent`) VALUES ", cols: 12},
	}
}

func (b *seedBatch) exec(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, m := range []*multiInsert{b.warehouses, b.items, b.barcodes, b.prices, b.bins} {
		if err := m.exec(ctx, tx); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// multiInsert is one INSERT ... VALUES (...), (...) statement; tail is appended inside each row's
// parentheses after the placeholders (constant columns).
type multiInsert struct {
	head, tail string
	cols       int
	args       []any
}

func (m *multiInsert) add(vals ...any) {
	if len(vals) != m.cols {
		panic(fmt.Sprintf("multiInsert: %d values for %d columns", len(vals), m.cols))
	}
	m.args = append(m.args, vals...)
}

func (m *multiInsert) exec(ctx context.Context, tx *sql.Tx) error {
	rows := len(m.args) / m.cols
	if rows == 0 {
		return nil
	}
	row := "(" + strings.Repeat("?, ", m.cols-1) + "?" + m.tail + ")"
	var q strings.Builder
	q.Grow(len(m.head) + rows*(len(row)+2))
	q.WriteString(m.head)
	for r := 0; r < rows; r++ {
		if r > 0 {
			q.WriteString(", ")
		}
		q.WriteString(row)
	}
	_, err := tx.ExecContext(ctx, q.String(), m.args...)
	return err
}
