package erpnext

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWebsiteItem(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	at := func(sec int) string { return time.Date(2026, 7, 1, 3, 0, sec, 0, time.UTC).Format(ModifiedLayout) }
	must(s.SaveItem(ctx, Item{Code: "TPL", Name: "Café Tee", Group: "Apparel", StockUOM: "Nos", Brand: "Acme", HasVariants: true,
		Description: "<p>tee</p>", Image: "/files/tee.jpg"}))
	must(s.SaveItem(ctx, Item{Code: "TPL-RED", Group: "Apparel", StockUOM: "Nos", VariantOf: "TPL", Image: "/files/red.jpg"}))
	must(s.SaveItem(ctx, Item{Code: "PLAIN", Group: "Apparel", StockUOM: "Nos", Image: "/files/plain.jpg"}))
	must(s.AttachFile(ctx, "TPL", "/files/tee.jpg", false))
	must(s.AttachFile(ctx, "TPL-RED", "/files/red.jpg", true)) // private: not a website image
	itemRow := func(code string) string {
		return join(row(t, s.DB, "SELECT `published_in_website`, `modified` FROM `tabItem` WHERE `name` = ?", code))
	}
	webRow := func(code string) string {
		return join(row(t, s.DB, "SELECT `name`, `route`, `published`, `web_item_name`, `item_name`, `item_group`, `stock_uom`, COALESCE(`brand`, '-'), "+
			"`description`, `has_variants`, COALESCE(`variant_of`, '-'), COALESCE(`website_image`, '-'), `naming_series`, `creation`, `modified` "+
			"FROM `tabWebsite Item` WHERE `item_code` = ?", code))
	}
	plainBefore := itemRow("PLAIN")

	// Publishing a variant makes the template's Website Item first; each first publish bumps the Item.
	s.Now = steppingClock(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), time.Second)
	must(s.PublishWebsiteItem(ctx, "TPL-RED"))
	if got, want := webRow("TPL"), "WEB-ITM-0001|item/web-itm-0001|1|Café Tee|Café Tee|Apparel|Nos|Acme|<p>tee</p>|1|-|/files/tee.jpg|WEB-ITM-.####|"+at(0)+"|"+at(0); got != want {
		t.Errorf("template Website Item\n got %s\nwant %s", got, want)
	}
	if got, want := webRow("TPL-RED"), "WEB-ITM-0002|item/web-itm-0002|1|TPL-RED|TPL-RED|Apparel|Nos|-|TPL-RED|0|TPL|-|WEB-ITM-.####|"+at(2)+"|"+at(2); got != want {
		t.Errorf("variant Website Item\n got %s\nwant %s", got, want)
	}
	if got := itemRow("TPL"); got != "1|"+at(1) {
		t.Errorf("template Item after publish: %s", got)
	}
	if got := itemRow("TPL-RED"); got != "1|"+at(3) {
		t.Errorf("variant Item after publish: %s", got)
	}
	if err := s.PublishWebsiteItem(ctx, "TPL-RED"); err == nil {
		t.Error("published twice")
	}

	// Unticking published touches only the Website Item.
	s.Now = fixedClock(time.Date(2026, 7, 1, 0, 0, 10, 0, time.UTC))
	must(s.UnpublishWebsiteItem(ctx, "TPL-RED"))
	if got := join(row(t, s.DB, "SELECT `published`, `modified` FROM `tabWebsite Item` WHERE `item_code` = 'TPL-RED'")); got != "0|"+at(10) {
		t.Errorf("after unpublish: %s", got)
	}
	if got := itemRow("TPL-RED"); got != "1|"+at(3) {
		t.Errorf("unpublish touched the Item: %s", got)
	}
	// Ticking it again is a Website Item save too: the Item's flag is already set.
	s.Now = fixedClock(time.Date(2026, 7, 1, 0, 0, 11, 0, time.UTC))
	must(s.PublishWebsiteItem(ctx, "TPL-RED"))
	if got := join(row(t, s.DB, "SELECT `published`, `modified` FROM `tabWebsite Item` WHERE `item_code` = 'TPL-RED'")); got != "1|"+at(11) {
		t.Errorf("after publishing again: %s", got)
	}
	if got := itemRow("TPL-RED"); got != "1|"+at(3) {
		t.Errorf("publishing again touched the Item: %s", got)
	}

	if got := itemRow("PLAIN"); got != plainBefore {
		t.Errorf("another item moved: %s → %s", plainBefore, got)
	}
	if err := s.UnpublishWebsiteItem(ctx, "PLAIN"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unpublish without a Website Item: %v", err)
	}
	if err := s.PublishWebsiteItem(ctx, "NOPE"); !errors.Is(err, ErrNotFound) {
		t.Errorf("publish of a missing item: %v", err)
	}
	// An image without a File row is dropped by validate_website_image.
	must(s.PublishWebsiteItem(ctx, "PLAIN"))
	if got := row(t, s.DB, "SELECT CONCAT(`name`, '|', COALESCE(`website_image`, '-')) FROM `tabWebsite Item` WHERE `item_code` = 'PLAIN'")[0]; got != "WEB-ITM-0003|-" {
		t.Errorf("PLAIN's Website Item %s", got)
	}
}
