package erpnext

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestReserveStock(t *testing.T) {
	s, _ := newSite(t)
	ctx := context.Background()
	if err := s.SaveItem(ctx, Item{Code: "R1", Group: "G", StockUOM: "Kg"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStock(ctx, "R1", Stock{Warehouse: WarehouseStores, ActualQty: "10"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Exec("UPDATE `tabBin` SET `ordered_qty` = 4, `reserved_qty_for_production` = 1, `reserved_stock` = 2"); err != nil {
		t.Fatal(err)
	}
	at := func(sec int) string { return time.Date(2026, 8, 1, 3, 0, sec, 0, time.UTC).Format(ModifiedLayout) }
	bin := func(wh string) string {
		return join(row(t, s.DB, "SELECT `actual_qty`, `reserved_qty`, `projected_qty`, `stock_uom`, `modified` FROM `tabBin` WHERE `item_code` = 'R1' AND `warehouse` = ?", wh))
	}
	steps := []struct {
		wh, reserved string
		want         string // actual|reserved|projected|uom|modified
	}{
		// projected = actual + ordered − reserved − reserved for production; reserved_stock is not subtracted.
		{WarehouseStores, "3", "10.000000000|3.000000000|10.000000000|Kg|" + at(0)},
		{WarehouseStores, "3.000", "10.000000000|3.000000000|10.000000000|Kg|" + at(0)}, // unchanged: nothing written
		{WarehouseStores, "0.5", "10.000000000|0.500000000|12.500000000|Kg|" + at(4)},
		{WarehouseFinished, "2", "0.000000000|2.000000000|-2.000000000|Kg|" + at(6)}, // get_bin makes the Bin
	}
	for i, st := range steps {
		s.Now = fixedClock(time.Date(2026, 8, 1, 0, 0, 2*i, 0, time.UTC))
		if err := s.ReserveStock(ctx, "R1", st.wh, st.reserved); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := bin(st.wh); got != st.want {
			t.Errorf("step %d: Bin %s, want %s", i, got, st.want)
		}
	}
	if got := join(row(t, s.DB, "SELECT `creation` = `modified`, `name` REGEXP '^[0-9a-f]{10}$' FROM `tabBin` WHERE `warehouse` = ?", WarehouseFinished)); got != "1|1" {
		t.Errorf("new Bin: creation = modified, hash name: %s", got)
	}
	if err := s.ReserveStock(ctx, "NOPE", WarehouseStores, "1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown item: %v", err)
	}
	if err := s.ReserveStock(ctx, "R1", WarehouseStores, "x"); err == nil {
		t.Error("bad quantity accepted")
	}
}
