package detector

import (
	"context"
	"fmt"
	"slices"
)

// Snapshot streams every item of the site, in name order, starting after the
// item named after ("" for the beginning). Each page of items is built whole
// and emitted with After set to the last name in it, so a caller that stores
// After with the items can resume an interrupted snapshot where it stopped.
// Memory stays bounded by the page size whatever the catalogue's size.
func (d *Detector) Snapshot(ctx context.Context, after string, emit EmitFunc) error {
	for {
		items, last, err := d.SnapshotPage(ctx, after)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		if err := emit(ctx, Batch{Items: items, After: last}); err != nil {
			return err
		}
		if len(items) < d.cfg.PageSize {
			return nil
		}
		after = last
	}
}

// SnapshotPage builds one page of items in name order after the item named
// after and returns them with the last name. An empty page means the end.
func (d *Detector) SnapshotPage(ctx context.Context, after string) ([]Item, string, error) {
	q := "SELECT name FROM `tabItem` WHERE name > ? ORDER BY name LIMIT ?"
	names, err := appendColumn(ctx, d.db, make([]string, 0, d.cfg.PageSize), q, []any{after, d.cfg.PageSize})
	if err != nil {
		return nil, after, fmt.Errorf("snapshot items after %q: %w", after, err)
	}
	if len(names) == 0 {
		return nil, after, nil
	}
	items, err := d.Build(ctx, names)
	if err != nil {
		return nil, after, fmt.Errorf("snapshot: %w", err)
	}
	return items, names[len(names)-1], nil
}

// PageSize is how many items a page holds.
func (d *Detector) PageSize() int { return d.cfg.PageSize }

// SetFilters changes what is selected and the base URL of images, for a
// settings reload. Not safe to call while a poll or build runs: call it from
// the goroutine that polls.
func (d *Detector) SetFilters(sel Selection, siteURL string) {
	sel.PriceLists = slices.Clone(sel.PriceLists)
	sel.Warehouses = slices.Clone(sel.Warehouses)
	sel.ItemGroups = slices.Clone(sel.ItemGroups)
	sel.Brands = slices.Clone(sel.Brands)
	d.cfg.Selection = sel
	d.cfg.SiteURL = siteURL
}
