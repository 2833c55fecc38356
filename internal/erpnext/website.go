package erpnext

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Website Items of the webshop app (FINDINGS §8.6; frappe/webshop website_item.py @ 012d9b72).

// webItemSeries is the Website Item naming series WEB-ITM-.####.
const webItemSeries = "WEB-ITM-"

// PublishWebsiteItem is the Item form's "Publish in Website" (make_website_item): for a variant the
// template's Website Item is made first (if it has none); then one Website Item is inserted (named from
// the WEB-ITM-.#### series, published, route "item/web-itm-nnnn", item fields copied, web_item_name =
// item_name, website_image = the Item's image when a public File has that URL, else NULL as
// validate_website_image leaves it). Its validate sets tabItem.published_in_website = 1 with
// frappe.db.set_value, bumping tabItem.modified, unless the flag is already set. When the Item has an
// unpublished Website Item, PublishWebsiteItem ticks `published` on it instead (a Website Item save).
// ErrNotFound when the Item does not exist; an error when it is already published.
func (s *Site) PublishWebsiteItem(ctx context.Context, code string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		name, published, err := websiteItemOf(ctx, tx, code)
		switch {
		case err != nil:
			return err
		case name != "" && published:
			return fmt.Errorf("erpnext: Website Item already exists against %s (%s)", code, name)
		case name != "":
			return s.saveWebsiteItem(ctx, tx, name, true)
		}
		return s.makeWebsiteItem(ctx, tx, code, false)
	})
}

// UnpublishWebsiteItem unticks `published` on the Item's Website Item and saves it: only the Website Item
// changes (its modified moves). Its validate passes publish=True, so tabItem.published_in_website stays 1
// and tabItem is not touched. ErrNotFound when the Item has no Website Item.
func (s *Site) UnpublishWebsiteItem(ctx context.Context, code string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		name, _, err := websiteItemOf(ctx, tx, code)
		if err != nil {
			return err
		}
		if name == "" {
			return fmt.Errorf("erpnext: Website Item of %s: %w", code, ErrNotFound)
		}
		return s.saveWebsiteItem(ctx, tx, name, false)
	})
}

// websiteItemOf returns the Website Item of the Item code, locked ("" when none).
func websiteItemOf(ctx context.Context, tx *sql.Tx, code string) (name string, published bool, err error) {
	err = tx.QueryRowContext(ctx, "SELECT `name`, `published` FROM `tabWebsite Item` WHERE `item_code` = ? ORDER BY `name` LIMIT 1 FOR UPDATE", code).
		Scan(&name, &published)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("erpnext: Website Item of %s: %w", code, err)
	}
	return name, published, nil
}

// makeWebsiteItem is make_website_item(item): suppress makes an existing Website Item no error.
func (s *Site) makeWebsiteItem(ctx context.Context, tx *sql.Tx, code string, suppress bool) error {
	var it struct {
		name, group, stockUOM, brand, variantOf, description, image sql.NullString
		hasVariants                                                 bool
	}
	err := tx.QueryRowContext(ctx, "SELECT `item_name`, `item_group`, `stock_uom`, `brand`, `variant_of`, `description`, `image`, `has_variants` "+
		"FROM `tabItem` WHERE `name` = ? FOR UPDATE", code).
		Scan(&it.name, &it.group, &it.stockUOM, &it.brand, &it.variantOf, &it.description, &it.image, &it.hasVariants)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("erpnext: publishing item %s: %w", code, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("erpnext: publishing item %s: %w", code, err)
	}
	if it.variantOf.String != "" {
		if err := s.makeWebsiteItem(ctx, tx, it.variantOf.String, true); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if existing, _, err := websiteItemOf(ctx, tx, code); err != nil || existing != "" {
		if err == nil && !suppress {
			err = fmt.Errorf("erpnext: Website Item already exists against %s (%s)", code, existing)
		}
		return err
	}
	name, err := nextWebItemName(ctx, tx)
	if err != nil {
		return err
	}
	image, err := websiteImage(ctx, tx, it.image.String)
	if err != nil {
		return err
	}
	now := s.now()
	if _, err := tx.ExecContext(ctx, "INSERT INTO `tabWebsite Item` (`name`, `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`, "+
		"`naming_series`, `web_item_name`, `route`, `has_variants`, `variant_of`, `published`, `item_code`, `item_name`, `item_group`, "+
		"`stock_uom`, `description`, `brand`, `website_image`) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
		name, now, now, adminUser, adminUser, webItemSeries+".####", it.name, "item/"+strings.ToLower(name), it.hasVariants, it.variantOf,
		code, it.name, it.group, it.stockUOM, it.description, it.brand, image); err != nil {
		return fmt.Errorf("erpnext: publishing item %s: %w", code, err)
	}
	return s.publishDeskItem(ctx, tx, code)
}

// saveWebsiteItem saves the Website Item name with `published` set: modified moves, validate checks the
// website image again and runs publish_unpublish_desk_item(publish=True).
func (s *Site) saveWebsiteItem(ctx context.Context, tx *sql.Tx, name string, published bool) error {
	var code, img sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT `item_code`, `website_image` FROM `tabWebsite Item` WHERE `name` = ?", name).Scan(&code, &img); err != nil {
		return fmt.Errorf("erpnext: Website Item %s: %w", name, err)
	}
	image, err := websiteImage(ctx, tx, img.String)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `tabWebsite Item` SET `modified` = ?, `modified_by` = ?, `published` = ?, `website_image` = ? WHERE `name` = ?",
		s.now(), adminUser, published, image, name); err != nil {
		return fmt.Errorf("erpnext: saving Website Item %s: %w", name, err)
	}
	return s.publishDeskItem(ctx, tx, code.String)
}

// publishDeskItem is publish_unpublish_desk_item(publish=True): set_value of published_in_website (and
// modified) unless it is already set.
func (s *Site) publishDeskItem(ctx context.Context, tx *sql.Tx, code string) error {
	_, err := tx.ExecContext(ctx, "UPDATE `tabItem` SET `published_in_website` = 1, `modified` = ?, `modified_by` = ? "+
		"WHERE `name` = ? AND `published_in_website` = 0", s.now(), adminUser, code)
	if err != nil {
		return fmt.Errorf("erpnext: publishing item %s: %w", code, err)
	}
	return nil
}

// websiteImage is validate_website_image: url stays only when a File with that URL exists and the first
// one (public before private) is public.
func websiteImage(ctx context.Context, tx *sql.Tx, url string) (any, error) {
	if url == "" {
		return nil, nil
	}
	var private bool
	err := tx.QueryRowContext(ctx, "SELECT `is_private` FROM `tabFile` WHERE `file_url` = ? ORDER BY `is_private` LIMIT 1", url).Scan(&private)
	switch {
	case errors.Is(err, sql.ErrNoRows) || err == nil && private:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("erpnext: website image %s: %w", url, err)
	}
	return url, nil
}

// nextWebItemName is the next name of the WEB-ITM-.#### series: the highest number in use plus one
// (tabSeries, which Frappe keeps the counter in, is not part of this schema).
func nextWebItemName(ctx context.Context, tx *sql.Tx) (string, error) {
	names, err := queryStrings(ctx, tx, "SELECT `name` FROM `tabWebsite Item` WHERE `name` LIKE 'WEB-ITM-%' FOR UPDATE")
	if err != nil {
		return "", fmt.Errorf("erpnext: naming a Website Item: %w", err)
	}
	last := 0
	for _, n := range names {
		if k, err := strconv.Atoi(strings.TrimPrefix(n, webItemSeries)); err == nil && k > last {
			last = k
		}
	}
	return fmt.Sprintf("%s%04d", webItemSeries, last+1), nil
}
