package site

import (
	"testing"
	"time"
)

// TestSafetyNetSpreadsWithSites: a site's own poll comes every
// max(poll interval, 30 s, sites × 800 ms), so that a server with many sites
// sees at most 1.25 of them a second; its offset stays within the interval.
func TestSafetyNetSpreadsWithSites(t *testing.T) {
	for _, tt := range []struct {
		sites    int
		interval time.Duration
		want     time.Duration
	}{
		{1, time.Second, 30 * time.Second},
		{50, time.Second, 40 * time.Second},
		{37, time.Second, 30 * time.Second},
		{75, time.Second, 60 * time.Second},
		{200, time.Second, 160 * time.Second},
		{500, time.Second, 400 * time.Second},
		{10, time.Minute, time.Minute},
	} {
		sv := &server{members: map[*member]bool{}}
		for range tt.sites {
			sv.members[&member{}] = true
		}
		got := sv.safetyNet(tt.interval)
		if got != tt.want {
			t.Errorf("%d sites, interval %s: every %s, want %s", tt.sites, tt.interval, got, tt.want)
		}
		if off := safetyOffset(got, "shop.example.com"); off < 0 || off >= got {
			t.Errorf("offset %s outside [0, %s)", off, got)
		}
	}
}

// TestCachesTooSmall: the probe warns once its own tables exceed either of
// MariaDB's table caches (at 50 sites with the defaults), and asks for room
// for the server's other users too.
func TestCachesTooSmall(t *testing.T) {
	for _, tt := range []struct {
		tables, defs, open int
		need               int
		small              bool
	}{
		{tables: 8, defs: 400, open: 2000, need: 408},
		{tables: 400, defs: 400, open: 2000, need: 800},
		{tables: 408, defs: 400, open: 2000, need: 808, small: true},
		{tables: 4000, defs: 4400, open: 2000, need: 4400, small: true},
		{tables: 4000, defs: 4400, open: 4400, need: 4400},
	} {
		need, small := cachesTooSmall(tt.tables, tt.defs, tt.open)
		if need != tt.need || small != tt.small {
			t.Errorf("cachesTooSmall(%d, %d, %d) = %d, %v; want %d, %v", tt.tables, tt.defs, tt.open, need, small, tt.need, tt.small)
		}
	}
}

// TestOwnPollsKeepTheirPhase: a probed site's own poll comes at its phase of
// the safety net, whenever it last polled: sites that the probe woke
// together do not poll together again a net later. Polls fall on the grid
// of the poll interval.
func TestOwnPollsKeepTheirPhase(t *testing.T) {
	const every, interval = 200 * time.Second, time.Second
	base := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(now time.Time, name string) time.Time { return now.Add(ownPollWait(now, every, interval, name)) }
	for _, tc := range []struct {
		name string
		now  []time.Time // when the site last polled (woken, say)
	}{
		{"a.example.com", []time.Time{base, base.Add(3 * time.Second), base.Add(17*time.Second + 300*time.Millisecond)}},
		{"b.example.com", []time.Time{base, base.Add(time.Millisecond), base.Add(42 * time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := at(tc.now[0], tc.name)
			for _, now := range tc.now {
				got := at(now, tc.name)
				if d := got.Sub(now); d <= 0 || d > every+interval {
					t.Errorf("from %v: waits %v, want (0, %v]", now, d, every+interval)
				}
				if got.UnixNano()%int64(interval) != 0 {
					t.Errorf("from %v: polls at %v, off the grid of %v", now, got, interval)
				}
				if d := got.Sub(first); d != 0 && d != every && d != -every {
					t.Errorf("from %v: polls at %v, %v from %v: not its phase", now, got, d, first)
				}
			}
		})
	}
	if a, b := at(base, "a.example.com"), at(base, "b.example.com"); a.Equal(b) {
		t.Errorf("two sites woken together poll together again at %v", a)
	}
}

// TestOwnPollLeft: the sites of a server join one by one at start, so a site
// that started early reckoned its own poll with a smaller safety net than the
// server's once all have joined. When that poll comes, it waits on for its
// phase of the net as it is now, rather than poll once more than the net
// allows.
func TestOwnPollLeft(t *testing.T) {
	const interval = time.Second
	base := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	const name = "a.example.com"
	for _, tc := range []struct {
		name         string
		then, now    time.Duration // the net when the poll was reckoned, and now
		wantLeftZero bool
	}{
		{"the same net: poll", 40 * time.Second, 40 * time.Second, true},
		{"the net grew: wait for its phase", 40 * time.Second, 400 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due := base.Add(ownPollWait(base, tc.then, interval, name))
			left := ownPollLeft(base, due, tc.now, interval, name)
			if (left == 0) != tc.wantLeftZero {
				t.Fatalf("at the poll reckoned with a net of %v, %v left with a net of %v", tc.then, left, tc.now)
			}
			if left > 0 {
				if want := base.Add(ownPollWait(base, tc.now, interval, name)); !due.Add(left).Equal(want) {
					t.Errorf("waits until %v, want the phase of the new net, %v", due.Add(left), want)
				}
			}
		})
	}
}

// TestHotUntil: a site stays hot until its change is hotFor old on the
// server's clock, with a second's margin, reckoned on this host's clock.
func TestHotUntil(t *testing.T) {
	local := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name              string
		serverNow, latest string
		want              time.Duration // after local
	}{
		{name: "a change this second", serverNow: "2026-12-02 15:30:00", latest: "2026-12-02 15:30:00", want: hotFor + time.Second},
		{name: "a change two seconds ago", serverNow: "2026-12-02 15:30:02", latest: "2026-12-02 15:30:00", want: hotFor - time.Second},
		{name: "the server's clock behind the change", serverNow: "2026-12-02 15:29:59", latest: "2026-12-02 15:30:00", want: hotFor + 2*time.Second},
		{name: "a time that does not parse", serverNow: "2026-12-02 15:30:00", latest: "soon", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hotUntil(local, tc.serverNow, tc.latest).Sub(local); got != tc.want {
				t.Errorf("hotUntil = local + %v, want local + %v", got, tc.want)
			}
		})
	}
}
