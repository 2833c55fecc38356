// Package ha lets two or more erpsync processes on different hosts serve
// the same sites, each site by one process at a time: the active one holds
// the site's MariaDB named lock (GET_LOCK); the others are standbys that try
// to take it every second.
//
// A process holds the locks of all its sites on one database server on one
// connection (Conn), which it keeps open and uses every Every: one round of
// queries checks every lock it holds and tries every lock it stands by for,
// so the connection never stays idle longer than that, however many sites
// there are. A standby ends the connection of a holder that has been idle
// for longer than DeadAfter in information_schema.PROCESSLIST (its process is
// dead, or its network silently dropped it) with KILL CONNECTION, which a
// user may do to its own connections without extra privileges, and then
// takes the locks; ending a holder's connection ends all the locks it held,
// which is right: that process is dead or cut off.
//
// The active one gives up a lock (stops its pipeline at once) when a round
// does not answer within QueryTimeout, or shows the lock no longer held; a
// connection that fails or is ended loses every lock on it, and its locks
// are tried again on a new connection. Every + QueryTimeout is well below
// DeadAfter, so a holder cut off from the database has stopped before a
// standby ends its connection. A standby that finds a lock free holds it
// Every + QueryTimeout before it runs the site: the server may have just
// ended the connection of an active one that lives on and has not noticed
// yet. So two never run a site at once, unless a process freezes for longer
// than DeadAfter. The active one's Term says since when it holds the lock
// and gives it the database server's clock (Term.Now), so that two hosts
// whose clocks differ give out versions from one clock.
//
// Named locks are local to a server: on Galera every host must reach the
// same node.
package ha

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of ConnOptions.
const (
	// DefaultEvery is how often a Conn checks the locks it holds and tries
	// the ones it stands by for.
	DefaultEvery = time.Second
	// DefaultDeadAfter is how long a holder's lock connection may stay
	// idle before a standby ends it: takeover after a silent cut comes
	// within DeadAfter + 2·Every.
	DefaultDeadAfter = 5 * time.Second
	// DefaultQueryTimeout bounds each query on the lock connection (and
	// opening it): an active one whose check does not answer within it
	// stops.
	DefaultQueryTimeout = 2 * time.Second
)

// maxLockName is MariaDB's limit on the length of a named lock's name.
const maxLockName = 64

// LockName is the name of the lock of the site whose database is database
// and whose tenant is tenant: "erpsync:<database>:<tenant>", or, when that
// is longer than MariaDB's 64 characters, "erpsync:" and a hash of both.
// Named locks are server-wide, so the database is part of the name; two
// tenants fed from one database are two pipelines and have two locks.
func LockName(database, tenant string) string {
	name := "erpsync:" + database + ":" + tenant
	if len(name) <= maxLockName {
		return name
	}
	sum := sha256.Sum256([]byte(database + "\x00" + tenant))
	return "erpsync:" + hex.EncodeToString(sum[:])[:maxLockName-len("erpsync:")]
}

// Role is what a process is for a site.
type Role int

const (
	// Standby: another process holds the lock (or nobody could be asked).
	Standby Role = iota
	// Active: this process holds the lock and runs the site.
	Active
)

func (r Role) String() string {
	if r == Active {
		return "active"
	}
	return "standby"
}

// Status is what a process knows of who runs a site.
type Status struct {
	Role Role
	// Since is, for Active, when this process took the lock; for Standby,
	// when this process first saw the current holder hold it (zero when
	// no holder was seen).
	Since time.Time
	// Host is the active one's host as the database server sees it (its
	// address, without the port): this process's own for Active; "" when
	// there is no holder or it is not visible.
	Host string
	// ConnID is the holder's lock connection id (0: none seen).
	ConnID int64
}

// Options shape a Lock.
type Options struct {
	// Name is the lock's name (LockName).
	Name string
	// Site names the site in log messages ("active for site X").
	Site string
	// Logger gets the site's transitions; nil discards.
	Logger *slog.Logger
	// Clock is the local clock Term.Now corrects; default time.Now.
	Clock func() time.Time
	// OnChange is told of each change of role or holder; nil: nobody. It
	// runs on Run's goroutine and must not block for long.
	OnChange func(Status)
	// OnTry is told, while standing by, how each try to take the lock went:
	// nil when the database answered, else why not (a standby that cannot
	// ask cannot take over). nil: nobody. Same goroutine as OnChange.
	OnTry func(err error)
}

// Lock is one process's side of a site's named lock, held on the lock
// connection of the site's database server (Conn.Lock).
type Lock struct {
	c    *Conn
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	status Status
}

// Lock returns the Lock named opts.Name on c's server. Its Run takes part
// in the election; Run must not run twice at once. Two Locks of one name on
// one Conn take turns: the later one stands by while the earlier one runs.
func (c *Conn) Lock(opts Options) (*Lock, error) {
	if opts.Name == "" || len(opts.Name) > maxLockName {
		return nil, fmt.Errorf("ha: lock name %q: want 1 to %d characters", opts.Name, maxLockName)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Lock{c: c, opts: opts, log: opts.Logger}, nil
}

// Status returns what the Lock knows now.
func (l *Lock) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// setStatus records s and tells OnChange when the role or holder changed.
func (l *Lock) setStatus(s Status) {
	l.mu.Lock()
	old := l.status
	l.status = s
	l.mu.Unlock()
	if s != old && l.opts.OnChange != nil {
		l.opts.OnChange(s)
	}
}

// Term is one period during which this process holds the lock.
type Term struct {
	// Start is when the lock was taken, on the database server's clock.
	Start time.Time

	clock    func() time.Time
	offset   atomic.Int64 // nanoseconds to add to clock to read the server's clock
	measured bool         // offset was measured once; only the Conn's loop reads and writes it
}

// Now is the database server's clock as this process reads it: the local
// clock corrected by the offset measured at each check of the lock (to
// within half a round trip). Versions taken from it on two hosts come from
// one clock, whatever their own clocks say.
func (t *Term) Now() time.Time { return t.clock().Add(time.Duration(t.offset.Load())) }

// Offset is how far the server's clock is ahead of the local one.
func (t *Term) Offset() time.Duration { return time.Duration(t.offset.Load()) }

// maxSampleRTT is the longest round trip whose clock reading still corrects
// Term.Now: a reading is off by up to half its round trip.
const maxSampleRTT = 100 * time.Millisecond

// measure records the offset of one reading of the server's clock taken
// between before and after (time.Now); the term's clock may differ from
// time.Now by a constant, which measure reads.
func (t *Term) measure(server, before, after time.Time) {
	if rtt := after.Sub(before); rtt > maxSampleRTT && t.measured {
		return
	}
	skew := t.clock().Sub(time.Now())
	mid := before.Add(after.Sub(before) / 2).Add(skew)
	t.offset.Store(int64(server.Sub(mid)))
	t.measured = true
}

// ActiveFunc runs the site while this process holds the lock, until ctx
// ends: because Run's context ended, or because the lock was lost (then at
// once). A non-nil error ends Run with it.
type ActiveFunc func(ctx context.Context, term *Term) error

// Run takes part in the election until ctx ends: standby while another
// process holds the lock, active (running active) while this one does. It
// returns nil when ctx ends, after active has returned and the lock is
// released, or active's error. An active that returns nil while ctx goes on
// gives the lock back and stands by again.
func (l *Lock) Run(ctx context.Context, active ActiveFunc) error {
	e := l.c.join(l)
	defer l.c.release(e, true)
	seen := Status{Role: Standby}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		}
		for ev, ok := l.c.next(e); ok; ev, ok = l.c.next(e) {
			switch ev.kind {
			case tried:
				seen = l.tried(ev, seen)
			case lostWaiting:
				if ctx.Err() == nil {
					l.log.Warn("lost the lock of site "+l.opts.Site+" while waiting to take over", "lock", l.opts.Name, "err", ev.err.Error())
				}
			case started:
				again, err := l.activate(ctx, e, ev, active)
				if !again {
					return err
				}
				seen = Status{Role: Standby}
			}
		}
	}
}

// tried handles a standby's try: OnTry, and the holder seen, if any, as the
// status and a log line when it is a new one.
func (l *Lock) tried(ev event, seen Status) Status {
	if l.opts.OnTry != nil {
		l.opts.OnTry(ev.err)
	}
	h := ev.holder
	if ev.err != nil || h == nil {
		return seen
	}
	if seen.ConnID != h.id {
		seen = Status{Role: Standby, Since: time.Now(), Host: h.host, ConnID: h.id}
		l.setStatus(seen) // before the log line: whoever reads the line finds the status told
		l.log.Info(fmt.Sprintf("standby: %s is active on host %s since %s", l.opts.Site, orUnknown(h.host), seen.Since.Format(time.RFC3339)),
			"lock", l.opts.Name, "connection", h.id)
	}
	l.setStatus(seen)
	return seen
}

// activate runs active in the term ev began, until the lock is lost (then
// active's context ends at once), ctx ends, or active returns. again is true
// when Run stands by again: the lock was lost, or active returned nil while
// ctx goes on (the lock is given back); otherwise Run returns err.
func (l *Lock) activate(ctx context.Context, e *entry, ev event, active ActiveFunc) (again bool, err error) {
	term := ev.term
	l.setStatus(Status{Role: Active, Since: time.Now(), Host: ev.self})
	l.log.Info(fmt.Sprintf("active for site %s", l.opts.Site), "lock", l.opts.Name, "host", orUnknown(ev.self),
		"server_clock_offset", term.Offset().Round(time.Microsecond).String())

	actx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- active(actx, term) }()
	for {
		// A lost event may wait already: the wake that told of it may
		// have been taken with the one that began the term.
		if ev, ok := l.nextLost(e); ok {
			if ctx.Err() != nil {
				stop()
				return false, <-done
			}
			l.log.Warn(fmt.Sprintf("lost the lock of site %s: stopping the pipeline at once and standing by", l.opts.Site),
				"lock", l.opts.Name, "err", ev.err.Error())
			stop()
			err := <-done
			l.setStatus(Status{Role: Standby})
			if err != nil || ctx.Err() != nil {
				return false, err
			}
			l.c.standBy(e)
			return true, nil
		}
		select {
		case err := <-done:
			if err != nil || ctx.Err() != nil {
				if err != nil {
					l.log.Info("released lock "+l.opts.Name, "reason", err.Error())
				}
				return false, err // Run's release gives the lock back
			}
			l.c.release(e, false)
			l.setStatus(Status{Role: Standby})
			return true, nil
		case <-ctx.Done():
			stop()
			return false, <-done
		case <-e.wake:
		}
	}
}

// nextLost takes e's events up to the first that tells the lock was lost
// (ok), or all of them; an active one's other events need nothing done.
func (l *Lock) nextLost(e *entry) (event, bool) {
	for ev, ok := l.c.next(e); ok; ev, ok = l.c.next(e) {
		if ev.kind == lost {
			return ev, true
		}
	}
	return event{}, false
}

func orUnknown(host string) string {
	if host == "" {
		return "(unknown)"
	}
	return host
}
