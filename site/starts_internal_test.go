package site

import (
	"context"
	"testing"
	"time"
)

func TestStartGate(t *testing.T) {
	const hold = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		// free lets the first slot go, or not, while a third site waits.
		free func(release func())
		// wait is about when the third site may start.
		least, most time.Duration
	}{
		{"released after the first poll", func(release func()) {
			time.Sleep(50 * time.Millisecond)
			release()
		}, 40 * time.Millisecond, hold - 50*time.Millisecond},
		{"released twice counts once", func(release func()) {
			time.Sleep(50 * time.Millisecond)
			release()
			release()
		}, 40 * time.Millisecond, hold - 50*time.Millisecond},
		{"never released: free after the hold", func(func()) {}, hold - 20*time.Millisecond, 5 * hold},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			g := newStartGate(2, hold)
			first, err := g.enter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			second, err := g.enter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer second()
			start := time.Now()
			go tc.free(first)
			third, err := g.enter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer third()
			if waited := time.Since(start); waited < tc.least || waited > tc.most {
				t.Errorf("the third site started after %v, want between %v and %v", waited, tc.least, tc.most)
			}
			// Two slots are taken, unless the hold freed the second's too.
			if n := len(g.slots); n != 2 && time.Since(start) < hold-20*time.Millisecond {
				t.Errorf("%d slots taken, want 2", n)
			}
		})
	}

	t.Run("the wait ends with ctx", func(t *testing.T) {
		g := newStartGate(1, time.Hour)
		release, err := g.enter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := g.enter(ctx); err == nil {
			t.Errorf("enter of a full gate returned no error when its ctx ended")
		}
	})
}
