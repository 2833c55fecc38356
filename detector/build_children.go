package detector

import "context"

// readUOMs writes the uoms of the items named codes (tabItem names):
// tabUOM Conversion Detail, {uom, conversion_factor}, in idx order.
func (p *page) readUOMs(ctx context.Context, codes []string) error { return nil }

// readAttributes writes the attributes of the items named codes:
// tabItem Variant Attribute, {attribute, value}, in idx order.
func (p *page) readAttributes(ctx context.Context, codes []string) error { return nil }

// readImages writes the images of the items named codes: tabItem.image,
// then the public files attached to the item (tabFile), absolute URLs.
func (p *page) readImages(ctx context.Context, codes []string) error { return nil }

// readWebsite writes the website of the items named codes from
// tabWebsite Item, when webshop is installed.
func (p *page) readWebsite(ctx context.Context, codes []string) error { return nil }
