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

// letGoCount counts LetConnectionsGo calls.
type letGoCount struct{ n int }

func (c *letGoCount) LetConnectionsGo() { c.n++ }

// TestStartReads: the outbox's connections go once, when the last part is
// done, however often a part says so.
func TestStartReads(t *testing.T) {
	for _, tc := range []struct {
		name  string
		calls []int // the part that says it is done, in order
		want  []int // LetConnectionsGo calls after each
	}{
		{name: "in order", calls: []int{0, 1, 2}, want: []int{0, 0, 1}},
		{name: "a part twice", calls: []int{0, 0, 1, 1, 2, 2, 0}, want: []int{0, 0, 0, 0, 1, 1, 1}},
		{name: "one part missing", calls: []int{2, 2, 0, 0}, want: []int{0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob := &letGoCount{}
			reads := newStartReads(ob, 3)
			parts := []func(){reads.part(), reads.part(), reads.part()}
			for i, p := range tc.calls {
				parts[p]()
				if ob.n != tc.want[i] {
					t.Fatalf("after call %d (part %d): %d LetConnectionsGo, want %d", i, p, ob.n, tc.want[i])
				}
			}
		})
	}
}
