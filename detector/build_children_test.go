package detector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// logRecords is a slog.Handler that keeps what is logged.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// matching returns "item path" of each record whose message contains msg.
func (h *logRecords) matching(msg string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		if !strings.Contains(r.Message, msg) {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, attrs["item"]+" "+attrs["path"])
	}
	return out
}

func TestBuildUOMsAndAttributes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	for _, it := range []erpnext.Item{
		{Code: "TPL-1", Group: "Products", StockUOM: "Nos", HasVariants: true,
			UOMs:       []erpnext.UOM{{UOM: "Nos", Factor: "1"}, {UOM: "Box", Factor: "12"}, {UOM: "Gram", Factor: "0.001"}, {UOM: "Lot", Factor: "123456789012.123456789"}},
			Attributes: []erpnext.Attribute{{Attribute: "Size"}, {Attribute: "Colour"}}},
		{Code: "TPL-1-L-RED", Group: "Products", StockUOM: "Nos", VariantOf: "TPL-1",
			Attributes: []erpnext.Attribute{{Attribute: "Size", Value: "L"}, {Attribute: "Colour", Value: "Red"}}},
		{Code: "PLAIN-1", Group: "Products", StockUOM: "Kg"},
	} {
		if err := f.site.SaveItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	// Rows of the same tables under another parent type or field are not the
	// Item's (custom apps may add such Table fields).
	now := f.site.Format(time.Now())
	for _, q := range []string{
		"INSERT INTO `tabUOM Conversion Detail` (name, creation, modified, idx, uom, conversion_factor, parent, parentfield, parenttype) " +
			"VALUES ('other-uom-1', '" + now + "', '" + now + "', 9, 'Pallet', 100, 'TPL-1', 'uoms', 'Custom Doc')",
		"INSERT INTO `tabUOM Conversion Detail` (name, creation, modified, idx, uom, conversion_factor, parent, parentfield, parenttype) " +
			"VALUES ('other-uom-2', '" + now + "', '" + now + "', 9, 'Crate', 24, 'TPL-1', 'purchase_uoms', 'Item')",
		"INSERT INTO `tabItem Variant Attribute` (name, creation, modified, idx, attribute, attribute_value, parent, parentfield, parenttype) " +
			"VALUES ('other-attr-1', '" + now + "', '" + now + "', 9, 'Weight', '5', 'TPL-1-L-RED', 'attributes', 'Custom Doc')",
	} {
		if _, err := f.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	items, err := f.det.Build(ctx, []string{"TPL-1", "TPL-1-L-RED", "PLAIN-1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		code, uoms, attributes string
	}{
		{"PLAIN-1", `[{"conversion_factor":1,"uom":"Kg"}]`, `[]`},
		{"TPL-1", `[{"conversion_factor":1,"uom":"Nos"},{"conversion_factor":12,"uom":"Box"},{"conversion_factor":0.001,"uom":"Gram"},` +
			`{"conversion_factor":"123456789012.123456789","uom":"Lot"}]`,
			`[{"attribute":"Size","value":null},{"attribute":"Colour","value":null}]`},
		{"TPL-1-L-RED", `[{"conversion_factor":1,"uom":"Nos"}]`, `[{"attribute":"Size","value":"L"},{"attribute":"Colour","value":"Red"}]`},
	}
	for i, tc := range tests {
		if items[i].Code != tc.code {
			t.Fatalf("item %d is %s, want %s", i, items[i].Code, tc.code)
		}
		if got := member(t, items[i], "uoms"); got != tc.uoms {
			t.Errorf("%s: uoms = %s, want %s", tc.code, got, tc.uoms)
		}
		if got := member(t, items[i], "attributes"); got != tc.attributes {
			t.Errorf("%s: attributes = %s, want %s", tc.code, got, tc.attributes)
		}
	}
}

func TestBuildImages(t *testing.T) {
	ctx := context.Background()
	logs := &logRecords{}
	f := newFixture(t, detector.Config{SiteURL: "https://erp.example.com/", Logger: slog.New(logs)})
	clock := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	f.site.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	type file struct {
		url     string
		private bool
	}
	tests := []struct {
		code, image string
		files       []file // attached in this order
		wantImage   string
		wantImages  string
	}{
		{code: "IMG-NONE", wantImage: `null`, wantImages: `[]`},
		{code: "IMG-MAIN", image: "/files/main.jpg",
			files: []file{{url: "/files/z-first.jpg"}, {url: "/files/main.jpg"}, {url: "/private/files/secret.jpg", private: true},
				{url: "https://cdn.example.com/a.png?w=100"}, {url: "/files/with space.jpg"}, {url: "/files/z-first.jpg"}},
			wantImage: `"https://erp.example.com/files/main.jpg"`,
			wantImages: `["https://erp.example.com/files/main.jpg","https://erp.example.com/files/z-first.jpg",` +
				`"https://cdn.example.com/a.png?w=100","https://erp.example.com/files/with%20space.jpg"]`},
		{code: "IMG-PRIVATE", image: "/private/files/hidden.jpg",
			files:     []file{{url: "/private/files/hidden.jpg", private: true}, {url: "/files/public.jpg"}},
			wantImage: `null`, wantImages: `["https://erp.example.com/files/public.jpg"]`},
		{code: "IMG-REMOTE", image: "https://cdn.example.com/r.png",
			files:     []file{{url: "/private/files/marked-public.jpg"}, {url: "https://erp.example.com/private/files/abs.jpg?sid=secret"}},
			wantImage: `"https://cdn.example.com/r.png"`, wantImages: `["https://cdn.example.com/r.png"]`},
	}
	codes := make([]string, 0, len(tests))
	for _, tc := range tests {
		if err := f.site.SaveItem(ctx, erpnext.Item{Code: tc.code, Group: "Products", StockUOM: "Nos", Image: tc.image}); err != nil {
			t.Fatal(err)
		}
		for _, fl := range tc.files {
			if err := f.site.AttachFile(ctx, tc.code, fl.url, fl.private); err != nil {
				t.Fatal(err)
			}
		}
		codes = append(codes, tc.code)
	}
	// A file attached to another doctype under the same name is not the item's.
	if _, err := f.db.ExecContext(ctx, "INSERT INTO `tabFile` (name, creation, modified, file_url, attached_to_doctype, attached_to_name) "+
		"VALUES ('f-other', '2020-01-01', '2020-01-01', '/files/other.jpg', 'Item Group', 'IMG-NONE')"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // private files are logged once, not at every build
		items, err := f.det.Build(ctx, codes)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range tests {
			var it detector.Item
			for _, x := range items {
				if x.Code == tc.code {
					it = x
				}
			}
			if got := member(t, it, "image"); got != tc.wantImage {
				t.Errorf("%s: image = %s, want %s", tc.code, got, tc.wantImage)
			}
			if got := member(t, it, "images"); got != tc.wantImages {
				t.Errorf("%s: images = %s, want %s", tc.code, got, tc.wantImages)
			}
		}
	}
	got := logs.matching("private file")
	want := []string{"IMG-MAIN /private/files/secret.jpg", "IMG-PRIVATE /private/files/hidden.jpg",
		"IMG-REMOTE /private/files/abs.jpg", "IMG-REMOTE /private/files/marked-public.jpg"}
	if strings.Join(sortedCopy(got), "\n") != strings.Join(want, "\n") {
		t.Errorf("private files logged:\n%s\nwant each once:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range got {
		if strings.Contains(r, "secret") && strings.Contains(r, "sid=") {
			t.Errorf("a log line holds a URL's query string: %s", r)
		}
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// websiteItem inserts a Website Item as webshop's make_website_item does
// (name from the WEB-ITM-.#### series, web_item_name = item_name,
// website_image = the item's image), then sets published and modified as a
// later save would.
func websiteItem(t *testing.T, f *fixture, name, code, route string, published bool, image, description, modified string) {
	t.Helper()
	_, err := f.db.ExecContext(context.Background(), "INSERT INTO `tabWebsite Item` (name, creation, modified, modified_by, owner, naming_series, "+
		"web_item_name, route, published, item_code, item_name, item_group, stock_uom, description, website_image) "+
		"VALUES (?, ?, ?, 'Administrator', 'Administrator', 'WEB-ITM-.####', ?, ?, ?, ?, ?, 'Products', 'Nos', ?, ?)",
		name, modified, modified, "Web "+code, route, published, code, code, description, nullString(image))
	if err != nil {
		t.Fatal(err)
	}
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestBuildWebsite(t *testing.T) {
	ctx := context.Background()
	logs := &logRecords{}
	f := newFixture(t, detector.Config{SiteURL: "https://erp.example.com", Logger: slog.New(logs)})
	t1, t2 := "2024-05-01 10:00:00.000000", "2024-05-02 09:00:00.000000"
	tests := []struct {
		code string
		rows func()
		want string
	}{
		{"WEB-NONE", func() {}, `null`},
		{"WEB-PUB", func() {
			websiteItem(t, f, "WEB-ITM-0001", "WEB-PUB", "shop/web-pub", true, "/files/web pub.jpg", "<p>Fine & dandy</p>", t1)
		},
			`{"description":"<p>Fine & dandy</p>","published":true,"route":"shop/web-pub","web_item_name":"Web WEB-PUB",` +
				`"website_image":"https://erp.example.com/files/web%20pub.jpg"}`},
		{"WEB-UNPUB", func() { websiteItem(t, f, "WEB-ITM-0002", "WEB-UNPUB", "", false, "", "", t1) },
			`{"description":null,"published":false,"route":null,"web_item_name":"Web WEB-UNPUB","website_image":null}`},
		{"WEB-PRIVATE", func() {
			websiteItem(t, f, "WEB-ITM-0003", "WEB-PRIVATE", "shop/private", true, "/private/files/w.jpg", "d", t1)
		}, `{"description":"d","published":true,"route":"shop/private","web_item_name":"Web WEB-PRIVATE","website_image":null}`},
		{"WEB-TWO", func() { // the published one, though older
			websiteItem(t, f, "WEB-ITM-0004", "WEB-TWO", "shop/old", true, "", "old", t1)
			websiteItem(t, f, "WEB-ITM-0005", "WEB-TWO", "shop/new", false, "", "new", t2)
		}, `{"description":"old","published":true,"route":"shop/old","web_item_name":"Web WEB-TWO","website_image":null}`},
		{"WEB-TWO-UNPUB", func() { // the last modified
			websiteItem(t, f, "WEB-ITM-0006", "WEB-TWO-UNPUB", "shop/new", false, "", "new", t2)
			websiteItem(t, f, "WEB-ITM-0007", "WEB-TWO-UNPUB", "shop/old", false, "", "old", t1)
		}, `{"description":"new","published":false,"route":"shop/new","web_item_name":"Web WEB-TWO-UNPUB","website_image":null}`},
	}
	codes := make([]string, 0, len(tests))
	for _, tc := range tests {
		if err := f.site.SaveItem(ctx, erpnext.Item{Code: tc.code, Group: "Products", StockUOM: "Nos"}); err != nil {
			t.Fatal(err)
		}
		tc.rows()
		codes = append(codes, tc.code)
	}
	check := func(det *detector.Detector, without bool) {
		t.Helper()
		items, err := det.Build(ctx, codes)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range tests {
			want := tc.want
			if without {
				want = `null`
			}
			for _, it := range items {
				if it.Code == tc.code {
					if got := member(t, it, "website"); got != want {
						t.Errorf("%s: website = %s, want %s", tc.code, got, want)
					}
				}
			}
		}
	}
	check(f.det, false)
	if got := logs.matching("private file"); len(got) != 1 || got[0] != "WEB-PRIVATE /private/files/w.jpg" {
		t.Errorf("private files logged: %q, want the website image of WEB-PRIVATE", got)
	}
	// Without webshop there is no tabWebsite Item: website is null, and the
	// table is not read.
	if _, err := f.db.ExecContext(ctx, "DROP TABLE `tabWebsite Item`"); err != nil {
		t.Fatal(err)
	}
	det, err := detector.New(ctx, f.db, detector.Config{SiteURL: "https://erp.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	check(det, true)
}

// The storefront tables ERPNext always has are required, with the columns
// Build reads; tabWebsite Item (webshop) is optional.
func TestNewChecksStorefrontTables(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		drop, want string
	}{
		{"DROP TABLE `tabWebsite Item`", ""},
		{"DROP TABLE `tabFile`", "table `tabFile`"},
		{"ALTER TABLE `tabWarehouse` DROP COLUMN lft", "`tabWarehouse`.lft"},
		{"ALTER TABLE `tabWebsite Item` DROP COLUMN route", "`tabWebsite Item`.route"},
	}
	for _, tc := range tests {
		t.Run(tc.drop, func(t *testing.T) {
			f := newFixture(t, detector.Config{})
			if _, err := f.db.ExecContext(ctx, tc.drop); err != nil {
				t.Fatal(err)
			}
			_, err := detector.New(ctx, f.db, detector.Config{})
			var se *detector.SiteError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New: %v, want no error", err)
			case tc.want != "" && (err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New: %v, want a SiteError naming %s", err, tc.want)
			}
		})
	}
}

// storefrontFields are the members the reference comparison covers.
var storefrontFields = []string{"image", "images", "stock", "stock_total", "uoms", "attributes", "website"}

// TestBuildStorefrontMatchesReference builds a sample catalogue with a
// warehouse tree, child rows, files and Website Items both ways: Build, and
// the slow map-based reference builder (build_reference_children_test.go),
// which reads the same rules apart.
func TestBuildStorefrontMatchesReference(t *testing.T) {
	tests := []struct {
		name string
		cfg  detector.Config
	}{
		{"defaults", detector.Config{}},
		{"groups, leaves, unknown warehouses, site URL, small pages", detector.Config{
			Selection: detector.Selection{Warehouses: []string{"All Warehouses - AC", erpnext.WarehouseStores, "Shops - AC", "W2"}},
			SiteURL:   "https://erp.example.com/shop/",
			PageSize:  70,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, tc.cfg)
			const seeded = 400
			if err := f.site.Seed(ctx, seeded); err != nil {
				t.Fatal(err)
			}
			for _, w := range []erpnext.Warehouse{
				{Name: "All Warehouses - AC", IsGroup: true},
				{Name: erpnext.WarehouseStores, Parent: "All Warehouses - AC"},
				{Name: "Shops - AC", Parent: "All Warehouses - AC", IsGroup: true},
				{Name: erpnext.WarehouseFinished, Parent: "Shops - AC"},
				{Name: erpnext.WarehouseTransit, Parent: "All Warehouses - AC"},
			} {
				if err := f.site.SaveWarehouse(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			codes := []string{"NO-SUCH-ITEM"}
			for i := 1; i <= seeded; i++ {
				codes = append(codes, fmt.Sprintf("ITEM-%05d", i))
			}
			now := f.site.Format(time.Now())
			for i := 1; i <= seeded; i++ {
				code := codes[i]
				var qs []string
				add := func(q string, args ...any) { qs = append(qs, fmt.Sprintf(q, args...)) }
				if i%3 == 0 {
					add("INSERT INTO `tabUOM Conversion Detail` (name, creation, modified, idx, uom, conversion_factor, parent, parentfield, parenttype) "+
						"VALUES ('u%d-1', '%s', '%s', 2, 'Box', %d.5, '%s', 'uoms', 'Item'), ('u%d-2', '%s', '%s', 1, 'Nos', 1, '%s', 'uoms', 'Item')",
						i, now, now, i, code, i, now, now, code)
				}
				if i%4 == 0 {
					add("INSERT INTO `tabItem Variant Attribute` (name, creation, modified, idx, attribute, attribute_value, parent, parentfield, parenttype) "+
						"VALUES ('a%d-1', '%s', '%s', 1, 'Size', '%s', '%s', 'attributes', 'Item'), ('a%d-2', '%s', '%s', 2, 'Colour', 'Red', '%s', 'attributes', 'Item')",
						i, now, now, map[bool]string{true: "", false: "L"}[i%8 == 0], code, i, now, now, code)
				}
				if i%5 == 0 {
					add("INSERT INTO `tabFile` (name, creation, modified, file_url, is_private, attached_to_doctype, attached_to_name) VALUES "+
						"('f%d-1', '2024-01-0%d 10:00:00', '%s', '/files/%s-b.jpg', 0, 'Item', '%s'), "+
						"('f%d-2', '2024-01-01 09:00:00', '%s', '/private/files/%s.pdf', 1, 'Item', '%s'), "+
						"('f%d-3', '2024-01-01 08:00:00', '%s', '/files/%s-a.jpg', 0, 'Item', '%s')",
						i, 1+i%9, now, code, code, i, now, code, code, i, now, code, code)
				}
				if i%7 == 0 {
					add("UPDATE `tabItem` SET image = '/private/files/%s.jpg' WHERE name = '%s'", code, code)
				}
				if i%6 == 0 {
					add("INSERT INTO `tabWebsite Item` (name, creation, modified, web_item_name, route, published, item_code, description, website_image) "+
						"VALUES ('WEB-%d', '%s', '%s', 'Web %s', 'shop/%s', %d, '%s', '<p>%s</p>', '/files/%s.jpg')", i, now, now, code, code, i%12/6, code, code, code)
				}
				if i%11 == 0 {
					add("INSERT INTO `tabBin` (name, creation, modified, item_code, warehouse, actual_qty, reserved_qty, projected_qty) "+
						"VALUES ('b%d-1', '%s', '%s', '%s', 'W2', 4.25, 5, -0.75), ('b%d-2', '%s', '%s', '%s', 'Shops - AC', 0, 1, -1)",
						i, now, now, code, i, now, now, code)
				}
				for _, q := range qs {
					if _, err := f.db.ExecContext(ctx, q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
			}
			got, err := f.det.Build(ctx, codes)
			if err != nil {
				t.Fatal(err)
			}
			want, err := f.det.ReferenceBuild(ctx, codes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Build gave %d items, the reference %d", len(got), len(want))
			}
			for i, it := range got {
				if it.Deleted != (want[i] == "") {
					t.Fatalf("item %s: deleted %v, reference %q", it.Code, it.Deleted, want[i])
				}
				if it.Deleted {
					continue
				}
				var ref map[string]json.RawMessage
				if err := json.Unmarshal([]byte(want[i]), &ref); err != nil {
					t.Fatal(err)
				}
				for _, name := range storefrontFields {
					if g := member(t, it, name); g != string(ref[name]) {
						t.Errorf("item %s: %s\n got %s\nwant %s", it.Code, name, g, ref[name])
					}
				}
			}
		})
	}
}

// Barcodes, uoms and attributes keep the order of their table's rows by
// (parent, idx, then barcode or name) under the column's collation, as one
// query per table with that ORDER BY gave: rows with the same idx (a merge
// moves the old item's rows under the surviving one without renumbering them)
// are ordered by key as the collation orders it ("a" before "B"), whatever
// the parent's spelling and the order the rows are stored in.
func TestBuildChildRowsKeepTheirTablesOrder(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, detector.Config{})
	if err := f.site.SaveItem(ctx, erpnext.Item{Code: "ORD-1", Group: "Products", StockUOM: "Nos"}); err != nil {
		t.Fatal(err)
	}
	// Names in primary key order differ from the expected order, and so does
	// the byte order of the keys of equal idx ('B' < 'a' in bytes).
	now := f.site.Format(time.Now())
	for _, q := range []string{
		"DELETE FROM `tabItem Barcode` WHERE parent = 'ORD-1'",
		"DELETE FROM `tabUOM Conversion Detail` WHERE parent = 'ORD-1'",
		"INSERT INTO `tabItem Barcode` (name, creation, modified, parent, parenttype, parentfield, idx, barcode) VALUES " +
			"('bc-1', '" + now + "', '" + now + "', 'ORD-1', 'Item', 'barcodes', 1, 'B-100'), " +
			"('bc-2', '" + now + "', '" + now + "', 'ord-1', 'Item', 'barcodes', 1, 'a-300'), " +
			"('bc-3', '" + now + "', '" + now + "', 'ORD-1', 'Item', 'barcodes', 2, 'c-1'), " +
			"('bc-4', '" + now + "', '" + now + "', 'ORD-1', 'Item', 'barcodes', 0, 'z-9')",
		"INSERT INTO `tabUOM Conversion Detail` (name, creation, modified, parent, parenttype, parentfield, idx, uom, conversion_factor) VALUES " +
			"('U-B', '" + now + "', '" + now + "', 'ORD-1', 'Item', 'uoms', 1, 'Box', 12), " +
			"('u-a', '" + now + "', '" + now + "', 'Ord-1', 'Item', 'uoms', 1, 'Nos', 1), " +
			"('U-0', '" + now + "', '" + now + "', 'ORD-1', 'Item', 'uoms', 3, 'Kg', 2.5)",
		"INSERT INTO `tabItem Variant Attribute` (name, creation, modified, parent, parenttype, parentfield, idx, attribute, attribute_value) VALUES " +
			"('AT-B', '" + now + "', '" + now + "', 'ORD-1', 'Item', 'attributes', 1, 'Size', 'L'), " +
			"('at-a', '" + now + "', '" + now + "', 'ORD-1', 'Item', 'attributes', 1, 'Colour', 'Red')",
	} {
		if _, err := f.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	items, err := f.det.Build(ctx, []string{"ORD-1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ member, want string }{
		{"barcodes", `[{"barcode":"z-9","barcode_type":null,"uom":null},{"barcode":"a-300","barcode_type":null,"uom":null},` +
			`{"barcode":"B-100","barcode_type":null,"uom":null},{"barcode":"c-1","barcode_type":null,"uom":null}]`},
		{"uoms", `[{"conversion_factor":1,"uom":"Nos"},{"conversion_factor":12,"uom":"Box"},{"conversion_factor":2.5,"uom":"Kg"}]`},
		{"attributes", `[{"attribute":"Colour","value":"Red"},{"attribute":"Size","value":"L"}]`},
	}
	for _, tc := range tests {
		if got := member(t, items[0], tc.member); got != tc.want {
			t.Errorf("%s = %s\nwant %s", tc.member, got, tc.want)
		}
	}
}
