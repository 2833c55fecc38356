// Package ha lets two or more erpsync processes on different hosts serve
// one site, one at a time: the active one holds a MariaDB named lock
// (GET_LOCK) on a connection it keeps open and uses every second; the others
// are standbys that try to take the lock every second. A standby ends the
// connection of a holder that has gone quiet for longer than DeadAfter (its
// process is dead, or its network silently dropped it) with KILL CONNECTION,
// which a user may do to its own connections without extra privileges, and
// then takes the lock.
//
// The active one uses its lock connection every Every and gives up (stops
// its pipeline) when an answer does not come within QueryTimeout; Every +
// QueryTimeout is well below DeadAfter, so a holder cut off from the
// database has stopped before a standby ends its connection. A standby that
// finds the lock free holds it Every + QueryTimeout before it runs: the
// server may have just ended the connection of an active one that lives on
// and has not noticed yet. So two never run at once, unless a process
// freezes for longer than DeadAfter. The active one's Term says since when
// it holds the lock and gives it the database server's clock (Term.Now), so
// that two hosts whose clocks differ give out versions from one clock.
//
// Named locks are local to a server: on Galera every host must reach the
// same node.
package ha

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderweave/erpsync/internal/retry"
)

// Defaults of Options.
const (
	// DefaultEvery is how often the active one checks that it still holds
	// the lock, and how often a standby tries to take it.
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
	// Logger gets the transitions; nil discards.
	Logger *slog.Logger
	// Clock is the local clock Term.Now corrects; default time.Now.
	Clock func() time.Time
	// Every, DeadAfter and QueryTimeout: see the defaults. Every +
	// QueryTimeout must stay below DeadAfter.
	Every, DeadAfter, QueryTimeout time.Duration
	// OnChange is told of each change of role or holder; nil: nobody. It
	// runs on the Lock's goroutine and must not block for long.
	OnChange func(Status)
	// OnTry is told, while standing by, how each try to take the lock went:
	// nil when the database answered, else why not (a standby that cannot
	// ask cannot take over). nil: nobody. Same goroutine as OnChange.
	OnTry func(err error)
}

// Lock is one process's side of a site's named lock.
type Lock struct {
	db   *sql.DB
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	status Status
}

// New returns the Lock named opts.Name on the server db connects to. db
// should be a pool of its own: the Lock keeps one of its connections for as
// long as it runs.
func New(db *sql.DB, opts Options) (*Lock, error) {
	if opts.Name == "" || len(opts.Name) > maxLockName {
		return nil, fmt.Errorf("ha: lock name %q: want 1 to %d characters", opts.Name, maxLockName)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.DeadAfter <= 0 {
		opts.DeadAfter = DefaultDeadAfter
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.Every+opts.QueryTimeout >= opts.DeadAfter {
		return nil, fmt.Errorf("ha: every (%s) + query timeout (%s) must stay below dead-after (%s): an active one cut off must stop before a standby ends its connection",
			opts.Every, opts.QueryTimeout, opts.DeadAfter)
	}
	return &Lock{db: db, opts: opts, log: opts.Logger}, nil
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

	clock  func() time.Time
	offset atomic.Int64 // nanoseconds to add to clock to read the server's clock
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
// between before and after (local clock).
func (t *Term) measure(server, before, after time.Time) {
	if rtt := after.Sub(before); rtt > maxSampleRTT && t.offset.Load() != 0 {
		return
	}
	mid := before.Add(after.Sub(before) / 2)
	t.offset.Store(int64(server.Sub(mid)))
}

// ActiveFunc runs the site while this process holds the lock, until ctx
// ends: because Run's context ended, or because the lock was lost (then at
// once). A non-nil error ends Run with it.
type ActiveFunc func(ctx context.Context, term *Term) error

// Run takes part in the election until ctx ends: standby while another
// process holds the lock, active (running active) while this one does. It
// returns nil when ctx ends, after active has returned and the lock is
// released, or active's error.
func (l *Lock) Run(ctx context.Context, active ActiveFunc) error {
	var outage retry.Outage
	var conn *sql.Conn
	defer func() { l.discard(conn) }()
	seen := Status{Role: Standby}
	warnedInvisible := false
	var killed int64 // the connection this standby ended last, until the next try takes the lock
	for attempt := 0; ; {
		if ctx.Err() != nil {
			return nil
		}
		var err error
		if conn == nil {
			conn, err = l.open(ctx)
		}
		var st state
		if err == nil {
			st, err = l.try(ctx, conn)
		}
		if err != nil && ctx.Err() != nil {
			return nil
		}
		if l.opts.OnTry != nil {
			l.opts.OnTry(err)
		}
		if err != nil {
			l.discard(conn)
			conn = nil
			attempt++
			outage.Failed(l.log, "lock "+l.opts.Name+" (standby; taking over is not possible while the database cannot be asked)", err)
			if !retry.Sleep(ctx, min(retry.Backoff(attempt, l.opts.Every), l.opts.Every)) {
				return nil
			}
			continue
		}
		attempt = 0
		outage.Recovered(l.log, "lock "+l.opts.Name)
		switch {
		case st.got:
			err := l.activate(ctx, conn, st, killed == 0, active)
			conn, killed = nil, 0 // activate ends conn
			seen = Status{Role: Standby}
			if err != nil || ctx.Err() != nil {
				return err
			}
			continue // lost: standby again at once
		case st.holder == 0:
			continue // released between the two questions: try again now
		case st.holder == killed:
			// Ended, and the server has not released its lock yet.
			if !retry.Sleep(ctx, l.opts.Every/10) {
				return nil
			}
			continue
		case !st.visible:
			if !warnedInvisible {
				warnedInvisible = true
				l.log.Warn("standby: another connection holds the lock but this database user cannot see it in the process list, so a dead holder cannot be ended: "+
					"give every erpsync host the same database user (erp.dsn)", "lock", l.opts.Name, "connection", st.holder)
			}
		case st.idle > l.opts.DeadAfter:
			l.log.Warn(fmt.Sprintf("standby: the active erpsync for site %s on host %s has not used its lock connection for %s: ending it (KILL CONNECTION %d) and taking over",
				l.opts.Site, st.host, st.idle.Round(time.Millisecond), st.holder),
				"lock", l.opts.Name, "connection", st.holder, "state", st.command)
			if err := l.kill(ctx, conn, st.holder); err != nil && ctx.Err() == nil {
				l.log.Warn("standby: ending the dead holder's connection failed", "connection", st.holder, "err", err)
			} else {
				killed = st.holder
			}
			continue // take it now
		}
		killed = 0 // another holder took the lock: its wait applies
		if seen.ConnID != st.holder {
			seen = Status{Role: Standby, Since: time.Now(), Host: st.host, ConnID: st.holder}
			l.setStatus(seen) // before the log line: whoever reads the line finds the status told
			l.log.Info(fmt.Sprintf("standby: %s is active on host %s since %s", l.opts.Site, orUnknown(st.host), seen.Since.Format(time.RFC3339)),
				"lock", l.opts.Name, "connection", st.holder)
		}
		l.setStatus(seen)
		if !retry.Sleep(ctx, l.opts.Every) {
			return nil
		}
	}
}

func orUnknown(host string) string {
	if host == "" {
		return "(unknown)"
	}
	return host
}

// state is what one try to take the lock found.
type state struct {
	got     bool
	server  time.Time // the server's clock, when got
	before  time.Time // local clock before and after the question, when got
	after   time.Time
	self    string // this connection's host as the server sees it, when got
	holder  int64  // the holder's connection id; 0: none
	visible bool   // the holder is in this user's process list
	host    string // the holder's host (no port)
	idle    time.Duration
	command string
}

// open takes a connection of its own from the pool.
func (l *Lock) open(ctx context.Context) (*sql.Conn, error) {
	qctx, cancel := context.WithTimeout(ctx, l.opts.QueryTimeout)
	defer cancel()
	conn, err := l.db.Conn(qctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := conn.PingContext(qctx); err != nil {
		l.discard(conn)
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// discard closes the connection itself rather than return it to the pool:
// the server then releases whatever lock it held.
func (l *Lock) discard(conn *sql.Conn) {
	if conn == nil {
		return
	}
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// tryQuery takes the lock if it is free (GET_LOCK with timeout 0 answers at
// once), reads the server's clock, and says who holds the lock.
const tryQuery = `SELECT GET_LOCK(?, 0), TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)), IS_USED_LOCK(?)`

// processQuery reads a connection's host and how long it has been in its
// current state from the process list, where a user without the PROCESS
// privilege sees its own connections (those of the same user name).
const processQuery = `SELECT HOST, TIME_MS, COMMAND FROM information_schema.PROCESSLIST WHERE ID = IF(? = 0, CONNECTION_ID(), ?)`

// try asks once.
func (l *Lock) try(ctx context.Context, conn *sql.Conn) (state, error) {
	qctx, cancel := context.WithTimeout(ctx, l.opts.QueryTimeout)
	defer cancel()
	var got, holder sql.NullInt64
	var nowUS int64
	before := l.opts.Clock()
	err := conn.QueryRowContext(qctx, tryQuery, l.opts.Name, l.opts.Name).Scan(&got, &nowUS, &holder)
	after := l.opts.Clock()
	if err != nil {
		return state{}, fmt.Errorf("take lock %s: %w", l.opts.Name, err)
	}
	if !got.Valid {
		return state{}, fmt.Errorf("take lock %s: GET_LOCK answered NULL", l.opts.Name)
	}
	if got.Int64 == 1 {
		st := state{got: true, server: time.UnixMicro(nowUS), before: before, after: after}
		if p, ok, err := process(qctx, conn, 0); err == nil && ok {
			st.self = p.host
		}
		return st, nil
	}
	st := state{holder: holder.Int64}
	if st.holder == 0 {
		return st, nil
	}
	p, ok, err := process(qctx, conn, st.holder)
	if err != nil {
		return state{}, fmt.Errorf("read the lock holder's connection: %w", err)
	}
	st.visible = ok
	st.host, st.idle, st.command = p.host, p.idle, p.command
	return st, nil
}

// proc is a process list row.
type proc struct {
	host    string // without the port
	idle    time.Duration
	command string
}

// process reads the process list row of connection id (0: this one), ok
// false when this user cannot see it or it is gone.
func process(ctx context.Context, conn *sql.Conn, id int64) (p proc, ok bool, err error) {
	var host, command sql.NullString
	var ms sql.NullFloat64
	err = conn.QueryRowContext(ctx, processQuery, id, id).Scan(&host, &ms, &command)
	if errors.Is(err, sql.ErrNoRows) {
		return proc{}, false, nil
	}
	if err != nil {
		return proc{}, false, err
	}
	return proc{host: hostOnly(host.String), idle: time.Duration(ms.Float64 * float64(time.Millisecond)), command: command.String}, true, nil
}

// hostOnly drops the port from a process list HOST ("10.0.0.5:41234").
func hostOnly(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 {
		return h
	}
	port := h[i+1:]
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return h
	}
	return h[:i]
}

// kill ends connection id (the holder's), which this user may do to its own
// connections. A connection already gone is no error.
func (l *Lock) kill(ctx context.Context, conn *sql.Conn, id int64) error {
	qctx, cancel := context.WithTimeout(ctx, l.opts.QueryTimeout)
	defer cancel()
	_, err := conn.ExecContext(qctx, fmt.Sprintf("KILL CONNECTION %d", id))
	if isUnknownThread(err) {
		return nil
	}
	return err
}

// checkQuery tells whether this connection still holds the lock, and reads
// the server's clock.
const checkQuery = `SELECT COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0), TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))`

// activate runs active while conn holds the lock, checking it every Every,
// and ends conn (releasing the lock) when active returns. It returns
// active's error, or nil when the lock was lost or ctx ended.
//
// A lock found free may have been freed a moment ago by the server ending
// the connection of an active one that lives on (a connection reset, an
// operator's KILL): that one notices at its next check, within Every +
// QueryTimeout. With wait set, activate holds the lock that long before it
// runs active, so that the two never run at once. A lock taken from a holder
// ended as dead needs no wait: its holder had been silent for DeadAfter.
func (l *Lock) activate(ctx context.Context, conn *sql.Conn, st state, wait bool, active ActiveFunc) error {
	term := &Term{clock: l.opts.Clock}
	term.measure(st.server, st.before, st.after)
	if wait {
		if err := l.hold(ctx, conn, term, l.opts.Every+l.opts.QueryTimeout); err != nil {
			l.discard(conn)
			if ctx.Err() == nil {
				l.log.Warn("lost the lock of site "+l.opts.Site+" while waiting to take over", "lock", l.opts.Name, "err", err.Error())
			}
			return nil
		}
	}
	term.Start = term.Now()
	l.setStatus(Status{Role: Active, Since: time.Now(), Host: st.self})
	l.log.Info(fmt.Sprintf("active for site %s", l.opts.Site), "lock", l.opts.Name, "host", orUnknown(st.self),
		"server_clock_offset", term.Offset().Round(time.Microsecond).String())

	actx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- active(actx, term) }()
	tick := time.NewTicker(l.opts.Every)
	defer tick.Stop()
	var lost error
	for lost == nil {
		select {
		case err := <-done:
			l.release(conn)
			if err != nil {
				l.log.Info("released lock "+l.opts.Name, "reason", err.Error())
			}
			return err
		case <-ctx.Done():
			stop()
			err := <-done
			l.release(conn)
			return err
		case <-tick.C:
			lost = l.check(ctx, conn, term)
		}
	}
	if ctx.Err() != nil {
		stop()
		err := <-done
		l.release(conn)
		return err
	}
	l.log.Warn(fmt.Sprintf("lost the lock of site %s: stopping the pipeline at once and standing by", l.opts.Site),
		"lock", l.opts.Name, "err", lost.Error())
	stop()
	l.discard(conn)
	err := <-done
	l.setStatus(Status{Role: Standby})
	return err
}

// hold keeps the lock for d, checking it every Every.
func (l *Lock) hold(ctx context.Context, conn *sql.Conn, term *Term, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return l.check(ctx, conn, term)
		}
		if !retry.Sleep(ctx, min(left, l.opts.Every)) {
			return ctx.Err()
		}
		if err := l.check(ctx, conn, term); err != nil {
			return err
		}
	}
}

// check asks whether conn still holds the lock, and measures the clock.
func (l *Lock) check(ctx context.Context, conn *sql.Conn, term *Term) error {
	qctx, cancel := context.WithTimeout(ctx, l.opts.QueryTimeout)
	defer cancel()
	var held, nowUS int64
	before := l.opts.Clock()
	err := conn.QueryRowContext(qctx, checkQuery, l.opts.Name).Scan(&held, &nowUS)
	after := l.opts.Clock()
	switch {
	case err != nil && errors.Is(qctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("the lock connection did not answer within %s", l.opts.QueryTimeout)
	case err != nil:
		return fmt.Errorf("the lock connection failed: %w", err)
	case held != 1:
		return errors.New("the lock connection no longer holds the lock")
	}
	term.measure(time.UnixMicro(nowUS), before, after)
	return nil
}

// release gives the lock back and ends conn.
func (l *Lock) release(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.QueryTimeout)
	defer cancel()
	_, _ = conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", l.opts.Name)
	l.discard(conn)
}
