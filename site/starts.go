package site

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// startsAtOnce is how many sites of one process may be starting at once:
// opening the outbox, the reads of its start, the first poll. Each holds an
// outbox connection (about 150 KB of SQLite's memory) and the garbage of
// its reads until its first poll ends, and the first polls of all sites
// queue for the same few database connections anyway: at a start of 500
// sites together, the connections alone added some 75 MB to the peak.
const startsAtOnce = 16

// startHold is the longest a starting site keeps its start slot: a site
// whose first poll is long (an initial sync) lets the next one start.
const startHold = 2 * time.Second

// startGate lets at most its capacity of sites start at once, each for hold
// at most.
type startGate struct {
	slots chan struct{}
	hold  time.Duration
}

func newStartGate(n int, hold time.Duration) *startGate {
	return &startGate{slots: make(chan struct{}, n), hold: hold}
}

// enter waits for a slot (or the end of ctx) and returns its release, which
// may be called any number of times; the slot is released after g.hold at
// the latest.
func (g *startGate) enter(ctx context.Context) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	free := func() { once.Do(func() { <-g.slots }) }
	t := time.AfterFunc(g.hold, free)
	return func() { t.Stop(); free() }, nil
}

// startReads lets a site's outbox connections go once each part of the
// pipeline that reads the outbox at its start (detection's first poll,
// delivery's first look, the first housekeeping round, the first metrics
// read) is done with those
// reads. Whichever finishes last would otherwise keep a connection, and the
// memory it holds, until it has been idle for a while: at hundreds of sites
// starting together, that adds up.
type startReads struct {
	left atomic.Int32
	ob   interface{ LetConnectionsGo() }
}

func newStartReads(ob interface{ LetConnectionsGo() }, parts int) *startReads {
	s := &startReads{ob: ob}
	s.left.Store(int32(parts))
	return s
}

// part returns what one part calls when its start's reads are done; it
// counts once, however often it is called.
func (s *startReads) part() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			if s.left.Add(-1) == 0 {
				s.ob.LetConnectionsGo()
			}
		})
	}
}
