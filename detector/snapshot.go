package detector

import (
	"context"
	"fmt"
)

// Snapshot streams every item of the site, in name order, starting after the
// item named after ("" for the beginning). Each page of items is built whole
// and emitted with After set to the last name in it, so a caller that stores
// After with the items can resume an interrupted snapshot where it stopped.
// Memory stays bounded by the page size whatever the catalogue's size.
func (d *Detector) Snapshot(ctx context.Context, after string, emit EmitFunc) error {
	q := "SELECT name FROM `tabItem` WHERE name > ? ORDER BY name LIMIT ?"
	for {
		names, err := appendColumn(ctx, d.db, make([]string, 0, d.cfg.PageSize), q, []any{after, d.cfg.PageSize})
		if err != nil {
			return fmt.Errorf("snapshot items after %q: %w", after, err)
		}
		if len(names) == 0 {
			return nil
		}
		items, err := d.Build(ctx, names)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		after = names[len(names)-1]
		if err := emit(ctx, Batch{Items: items, After: after}); err != nil {
			return err
		}
		if len(names) < d.cfg.PageSize {
			return nil
		}
	}
}
