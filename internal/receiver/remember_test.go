package receiver

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/orderweave/erpsync/signer"
)

// rememberedIDs is how many delivery ids r remembers.
func (r *Receiver) rememberedIDs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids.len()
}

// TestRememberedBounded: N distinct delivery ids whose timestamps spread
// over several windows leave remembered only those whose window (plus the
// slack) has not ended, at every point on the way; with a cap, never more
// than the cap.
func TestRememberedBounded(t *testing.T) {
	const n = 200_000
	tests := []struct {
		name    string
		window  time.Duration
		spread  time.Duration // the receiver's clock runs over this while the ids arrive
		age     int64         // timestamps lag the clock by 0..age-1 seconds
		limit   int           // default MaxRemembered
		tenants int           // ids spread over so many tenants; default 1
	}{
		{name: "default window over 20 minutes", window: signer.Window, spread: 20 * time.Minute, age: 290},
		{name: "2s window over 10 minutes", window: 2 * time.Second, spread: 10 * time.Minute, age: 2},
		{name: "3 tenants over an hour", window: signer.Window, spread: time.Hour, age: 60, tenants: 3},
		{name: "a flood inside one window meets the cap", window: signer.Window, spread: time.Minute, age: 10, limit: 5_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Unix(1_800_000_000, 0)
			now := start
			r := New(Options{Window: tt.window, Now: func() time.Time { return now }})
			if tt.limit > 0 {
				r.ids.max = tt.limit
			}
			tenants := max(tt.tenants, 1)
			untils := make([]time.Time, 0, n) // when each id may be forgotten
			step := tt.spread / n
			for i := range n {
				now = start.Add(time.Duration(i) * step)
				sent := time.Unix(now.Unix()-int64(i*7919)%tt.age, 0)
				d := &delivery{tenant: "t" + strconv.Itoa(i%tenants), delivery: fmt.Sprintf("%032x", i), sent: sent}
				if r.apply(d) {
					t.Fatalf("id %d taken for a duplicate", i)
				}
				untils = append(untils, sent.Add(tt.window+rememberSlack))
				if i%10_000 != 9_999 {
					continue
				}
				live := 0
				for _, u := range untils {
					if u.After(now) {
						live++
					}
				}
				got := r.rememberedIDs()
				if tt.limit > 0 {
					live = min(live, tt.limit)
				}
				if got != live {
					t.Fatalf("after %d ids, at %s: %d remembered, want the %d whose window has not ended",
						i+1, now.Sub(start), got, live)
				}
			}
			got := r.rememberedIDs()
			if got >= n/2 {
				t.Fatalf("%d of %d ids remembered", got, n)
			}
			st := r.Stats()
			if st.Accepted != n || st.Duplicates != 0 {
				t.Fatalf("stats = %+v", st)
			}
			if tt.limit > 0 && (got != tt.limit || st.Evicted == 0) {
				t.Fatalf("%d remembered with a cap of %d, %d evicted", got, tt.limit, st.Evicted)
			}
			if tt.limit == 0 && st.Evicted != 0 {
				t.Fatalf("%d evicted below the cap", st.Evicted)
			}
			// Once every window has ended, nothing is held.
			now = now.Add(tt.window + rememberSlack + time.Second)
			r.apply(&delivery{tenant: "t0", delivery: "last", sent: now})
			if got := r.rememberedIDs(); got != 1 {
				t.Fatalf("%d remembered after every window ended, want 1", got)
			}
		})
	}
}

// TestRememberCap: at the cap the id whose window ends first is forgotten
// first; a repeat of it is then applied again, a repeat of a kept one is a
// duplicate.
func TestRememberCap(t *testing.T) {
	const limit = 100
	now := time.Unix(1_800_000_000, 0)
	r := New(Options{Now: func() time.Time { return now }})
	r.ids.max = limit
	// Ids 0..149, each sent a second later than the one before, all within
	// the window.
	send := func(i int) bool {
		return r.apply(&delivery{tenant: "acme", delivery: "d-" + strconv.Itoa(i), sent: now.Add(time.Duration(i-150) * time.Second)})
	}
	for i := range 150 {
		if send(i) {
			t.Fatalf("d-%d taken for a duplicate", i)
		}
	}
	if got, st := r.rememberedIDs(), r.Stats(); got != limit || st.Evicted != 50 {
		t.Fatalf("%d remembered, %d evicted; want %d and 50", got, st.Evicted, limit)
	}
	tests := []struct {
		id        int
		duplicate bool
	}{
		{149, true}, {50, true}, {100, true},
		{49, false}, // evicted: applied again, and now the newest remembered
		{0, false},
	}
	for _, tt := range tests {
		if got := send(tt.id); got != tt.duplicate {
			t.Errorf("d-%d: duplicate=%v, want %v", tt.id, got, tt.duplicate)
		}
	}
	if got := r.rememberedIDs(); got != limit {
		t.Fatalf("%d remembered, want the cap %d", got, limit)
	}
}

// TestKeyOf: a key tells tenant and id apart wherever the boundary falls.
func TestKeyOf(t *testing.T) {
	tests := []struct{ a, b [2]string }{
		{[2]string{"acme", "d-1"}, [2]string{"acme", "d-2"}},
		{[2]string{"acme", "d-1"}, [2]string{"beta", "d-1"}},
		{[2]string{"ab", "c"}, [2]string{"a", "bc"}},
		{[2]string{"", "abc"}, [2]string{"abc", ""}},
	}
	for _, tt := range tests {
		if keyOf(tt.a[0], tt.a[1]) == keyOf(tt.b[0], tt.b[1]) {
			t.Errorf("keyOf%q == keyOf%q", tt.a, tt.b)
		}
	}
	if keyOf("acme", "d-1") != keyOf("acme", "d-1") {
		t.Error("keyOf is not stable")
	}
}

// BenchmarkRememberedMemory fills the set to MaxRemembered ids and reports
// the heap it holds per id (B/id).
func BenchmarkRememberedMemory(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	for range b.N {
		r := New(Options{Now: func() time.Time { return now }})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range MaxRemembered {
			r.apply(&delivery{tenant: "acme", delivery: fmt.Sprintf("%032x", i), sent: now})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if r.rememberedIDs() != MaxRemembered {
			b.Fatalf("%d remembered", r.rememberedIDs())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/MaxRemembered, "B/id")
		runtime.KeepAlive(r)
	}
}
