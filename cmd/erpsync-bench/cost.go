package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// The cost comparison (--baseline): erpsync's own CPU per item against that of
// an erpsync binary built from an earlier commit, measured in the same run on
// the same catalogue. Each binary runs on a lane of the catalogue: the same
// database, its own tenant at the receiver and its own outbox, so that neither
// sees what the other sent. Both read settings files written the same way
// (startDaemon), holding only keys that both know.

const onlyCost = "cost" // --only cost

// costLanes are the lanes' names: the baseline's and the binary under test's.
var costLanes = [...]string{"base", "new"}

// baselineOf resolves the --baseline binary and asks it its version.
func baselineOf(ctx context.Context, path string) (string, *Baseline, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("--baseline %s: %w", path, err)
	}
	out, err := exec.CommandContext(ctx, abs, "version").CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("--baseline %s: `erpsync version`: %v\n%s", path, err, out)
	}
	return abs, &Baseline{Path: abs, Version: strings.TrimSpace(string(out))}, nil
}

// lane is c as the erpsync binary bin runs it in the cost comparison.
func (b *bench) lane(c *catalogue, lane, bin string) *catalogue {
	l := *c
	l.name = c.name + "_" + lane
	l.lane, l.bin = lane, bin
	l.outbox = filepath.Join(b.dir, l.name+".outbox.db")
	l.peak, l.samePeak = 0, 0 // the RSS rows are the catalogue's own runs
	return &l
}

func laneSuffix(c *catalogue) string {
	if c.lane == "" {
		return ""
	}
	return "-" + c.lane
}

// costOnly is --only cost: the comparison on each catalogue, nothing else.
func (b *bench) costOnly(ctx context.Context) error {
	sizes := []struct {
		name  string
		items int
	}{{"bench_small", b.o.small}, {"bench_large", b.o.large}}
	for _, s := range sizes {
		if s.items <= 0 {
			continue
		}
		c, err := b.catalogue(ctx, s.name, s.items)
		if err != nil {
			return err
		}
		if err := b.cost(ctx, c, 100, 1); err != nil {
			return err
		}
	}
	return nil
}

// cost compares the baseline's CPU per item with this erpsync's on c,
// interleaved so that both meet the same load: the baseline's initial sync
// on its fresh outbox, then this erpsync's on its own; then per batch size a
// bulk change of every Standard Selling price by each, the first of a pair
// alternating between batch sizes, each daemon started on its outbox (and
// settled: the second catches up the first's change there) after the other
// stopped.
func (b *bench) cost(ctx context.Context, c *catalogue, batches ...int) error {
	lanes := [2]*catalogue{b.lane(c, costLanes[0], b.baseline), b.lane(c, costLanes[1], b.bin)}
	var got [2]costRun
	for i, l := range lanes {
		progress("cost, %s erpsync (%s):", laneLabel(l), l.name)
		d, r, err := b.measureInitial(ctx, l, 100)
		if err == nil {
			err = b.stop(l, d)
		}
		if err != nil {
			return fmt.Errorf("cost: initial sync of %d items by the %s erpsync: %w", c.items, laneLabel(l), err)
		}
		got[i] = costRun{items: c.items, cpu: r.CPU, complete: r.Complete}
	}
	b.addCost(newCost("initial sync", c.items, c.items, 100, got[0], got[1]))

	for k, batch := range batches {
		order := []int{0, 1}
		if k%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			l := lanes[i]
			progress("cost, %s erpsync (%s):", laneLabel(l), l.name)
			r, err := b.costBulk(ctx, l, batch)
			if err != nil {
				return fmt.Errorf("cost: bulk change at batch %d by the %s erpsync: %w", batch, laneLabel(l), err)
			}
			got[i] = costRun{items: r.Verified, cpu: r.CPU, complete: r.Complete}
		}
		b.addCost(newCost("bulk change", c.items, len(c.codes), batch, got[0], got[1]))
	}
	return nil
}

// costBulk starts l's daemon, changes every Standard Selling price once and
// stops it.
func (b *bench) costBulk(ctx context.Context, l *catalogue, batch int) (Bulk, error) {
	d, err := b.restart(ctx, l, batch, true)
	if err != nil {
		return Bulk{}, err
	}
	r, err := b.measureBulk(ctx, l, d, batch, l.codes)
	if err != nil {
		return Bulk{}, b.stopOn(l, d, err)
	}
	return r, b.stop(l, d)
}

func laneLabel(l *catalogue) string {
	if l.lane == costLanes[0] {
		return "baseline"
	}
	return "new"
}

func (b *bench) addCost(c Cost) {
	b.res.Cost = append(b.res.Cost, c)
	progress("  %s, %s items, batch %d: erpsync CPU s per 1,000 items: baseline %.3f, new %.3f: ×%.2f, %s (bound ×%.2f); other processes %.0f%% / %.0f%% of a core",
		c.Measurement, thousands(c.Items), c.Batch, c.BaselinePer1000, c.NewPer1000, c.Ratio, c.Verdict, c.Bound,
		c.BaselineCPU.OtherPercent, c.NewCPU.OtherPercent)
}
