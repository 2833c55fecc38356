package ha

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/internal/retry"
)

// ConnOptions shape a Conn.
type ConnOptions struct {
	// Logger gets what concerns the connection as a whole (its outages,
	// dead holders ended); nil discards.
	Logger *slog.Logger
	// Every, DeadAfter and QueryTimeout: see the defaults. Every +
	// QueryTimeout must stay below DeadAfter.
	Every, DeadAfter, QueryTimeout time.Duration
}

// Conn is one process's lock connection to a database server: one
// connection taken from a pool and kept open holds the named locks of all
// the Locks made from it (Conn.Lock), one per site of that server. While a
// Lock runs, a loop uses the connection every Every: one round checks every
// lock held and tries every lock stood by for, looks up the holders in the
// process list, and ends dead ones. Queries on the connection are
// serialised. When the connection fails or is ended, every Lock on it loses
// its lock (the active ones stop at once) and the locks are tried again on a
// new connection; the connection is closed when the last Lock's Run ends.
type Conn struct {
	db   *sql.DB
	opts ConnOptions
	log  *slog.Logger
	kick chan struct{} // a round now

	// qmu serialises the use of the connection: the loop's rounds, and a
	// Lock giving its lock back. The fields below are the loop's, under
	// qmu.
	qmu             sync.Mutex
	conn            *sql.Conn // nil: not open
	id              int64     // conn's CONNECTION_ID()
	self            string    // conn's host as the server sees it
	outage          retry.Outage
	attempt         int
	warnedInvisible bool

	mu      sync.Mutex
	entries []*entry // the running Locks, in the order they joined
	running bool     // the loop runs
	paused  bool     // rounds are held back (tests: a frozen process)
}

// NewConn returns the lock connection to the server of db, a pool it takes
// one connection from while a Lock runs (the pool must allow one more than
// its other users need). It does not connect.
func NewConn(db *sql.DB, opts ConnOptions) (*Conn, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
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
	return &Conn{db: db, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}, nil
}

// entry is a running Lock on its Conn. The fields but l and wake are under
// Conn.mu.
type entry struct {
	l    *Lock
	wake chan struct{} // events wait in box

	want   bool      // stands by: try to take the lock
	held   bool      // the connection holds the lock
	term   *Term     // held: the term, begun or not
	begun  bool      // held: the term began (told to Run)
	begin  time.Time // held, not begun: the term begins at the first good check from then
	killed int64     // the holder this process ended, until the lock is taken or another holds it
	box    []event
}

// eventKind is what the loop tells a Lock's Run.
type eventKind int

const (
	// tried: a try to take the lock (err: it could not ask; holder: who
	// holds it, when there is one to tell of).
	tried eventKind = iota
	// started: the term began.
	started
	// lost: the lock was lost during the term.
	lost
	// lostWaiting: the lock was lost before the term began.
	lostWaiting
)

// event is one thing the loop tells a Lock's Run.
type event struct {
	kind   eventKind
	err    error
	holder *holder
	term   *Term
	self   string // started: this connection's host
}

// holder is the holder of a lock as a standby sees it.
type holder struct {
	id   int64
	host string // "" when not visible
}

// post tells e's Run of ev; a try replaces a try not taken yet. c.mu is
// held.
func (e *entry) post(ev event) {
	if ev.kind == tried && len(e.box) > 0 && e.box[len(e.box)-1].kind == tried {
		e.box[len(e.box)-1] = ev
	} else {
		e.box = append(e.box, ev)
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// next takes e's next event.
func (c *Conn) next(e *entry) (event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(e.box) == 0 {
		return event{}, false
	}
	ev := e.box[0]
	e.box = e.box[1:]
	return ev, true
}

// join adds l's Run, standing by, and starts the loop if it is not running.
func (c *Conn) join(l *Lock) *entry {
	e := &entry{l: l, wake: make(chan struct{}, 1), want: true}
	c.mu.Lock()
	c.entries = append(c.entries, e)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	c.kickLoop()
	return e
}

// standBy makes e, which lost its lock and whose term has ended, try for it
// again at once.
func (c *Conn) standBy(e *entry) {
	c.mu.Lock()
	e.want = true
	c.mu.Unlock()
	c.kickLoop()
}

// release gives e's lock back (RELEASE_LOCK) if the connection holds it;
// with leave, e's Run ends and e leaves, and the last to leave closes the
// connection (which releases what it held); otherwise e stands by again.
func (c *Conn) release(e *entry, leave bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	c.mu.Lock()
	held := e.held
	e.held, e.term, e.begun, e.want = false, nil, false, !leave
	if leave {
		c.entries = slices.DeleteFunc(c.entries, func(x *entry) bool { return x == e })
	}
	last := len(c.entries) == 0
	c.mu.Unlock()
	switch {
	case c.conn == nil:
	case last:
		c.discard()
	case held:
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.QueryTimeout)
		_, err := c.conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", e.l.opts.Name)
		cancel()
		if err != nil {
			c.failed(fmt.Errorf("give lock %s back: %w", e.l.opts.Name, err))
		}
	}
	c.kickLoop()
}

// kickLoop makes the loop run a round now.
func (c *Conn) kickLoop() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// loop runs a round every Every (sooner when asked, or when a lock is
// about to be free), until no Lock runs.
func (c *Conn) loop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-c.kick:
		}
		c.qmu.Lock()
		c.mu.Lock()
		if len(c.entries) == 0 {
			c.running = false
			c.mu.Unlock()
			c.qmu.Unlock()
			return
		}
		paused := c.paused
		c.mu.Unlock()
		next := c.opts.Every
		if !paused {
			next = c.round()
		}
		c.qmu.Unlock()
		timer.Reset(next)
	}
}

// ask is one lock a round asks about: whether the connection still holds
// it (held), or to take it.
type ask struct {
	e    *entry
	held bool
}

// answer is what a round found of one lock: got is GET_LOCK's answer (NULL
// for a lock held), holder IS_USED_LOCK's.
type answer struct {
	got    sql.NullInt64
	holder sql.NullInt64
}

// round checks the locks held and tries the others, once, and returns how
// long until the next round. qmu is held.
func (c *Conn) round() time.Duration {
	if c.conn == nil {
		if err := c.open(); err != nil {
			c.failed(err)
			c.attempt++
			return min(retry.Backoff(c.attempt, c.opts.Every), c.opts.Every)
		}
	}
	c.mu.Lock()
	asks, dups := c.asks()
	c.mu.Unlock()

	answers, server, before, after, err := c.query(asks)
	if err == nil {
		err = c.checkAnswers(asks, answers)
	}
	if err != nil {
		c.failed(err)
		c.attempt++
		return min(retry.Backoff(c.attempt, c.opts.Every), c.opts.Every)
	}

	next := c.opts.Every
	now := time.Now()
	var others []ask // standbys of a lock another connection holds
	var holders []int64
	c.mu.Lock()
	for i, a := range asks {
		e, ans := a.e, answers[i]
		switch {
		case a.held:
			e.term.measure(server, before, after)
			if !e.begun {
				if now.Before(e.begin) {
					next = min(next, max(e.begin.Sub(now), time.Millisecond))
					continue
				}
				c.begin(e)
			}
		case ans.got.Int64 == 1:
			e.post(event{kind: tried})
			e.held, e.want, e.begun = true, false, false
			e.term = &Term{clock: e.l.opts.Clock}
			e.term.measure(server, before, after)
			if e.killed != 0 {
				// Taken from a holder ended as dead: it had been silent
				// for DeadAfter, so no wait.
				e.killed = 0
				c.begin(e)
				continue
			}
			e.begin = now.Add(c.opts.Every + c.opts.QueryTimeout)
		case !ans.holder.Valid || ans.holder.Int64 == 0:
			e.post(event{kind: tried})
			next = min(next, c.opts.Every/10) // freed between the two questions: again soon
		case ans.holder.Int64 == e.killed:
			e.post(event{kind: tried})
			next = min(next, c.opts.Every/10) // ended, and the server has not released the lock yet
		default:
			e.killed = 0 // another holder took the lock: its wait applies
			others = append(others, a)
			holders = append(holders, ans.holder.Int64)
		}
	}
	for _, e := range dups {
		e.post(event{kind: tried, holder: &holder{id: c.id, host: c.self}})
	}
	c.mu.Unlock()
	c.outage.Recovered(c.log, "lock connection")
	c.attempt = 0
	if len(others) == 0 {
		return next
	}

	procs, err := c.processes(holders)
	if err != nil {
		c.failed(fmt.Errorf("read the lock holders' connections: %w", err))
		return c.opts.Every
	}
	dead := map[int64][]*entry{}
	c.mu.Lock()
	for i, a := range others {
		id := holders[i]
		p, visible := procs[id]
		switch {
		case !visible:
			if !c.warnedInvisible {
				c.warnedInvisible = true
				c.log.Warn("standby: another connection holds a lock but this database user cannot see it in the process list, so a dead holder cannot be ended: "+
					"give every erpsync host the same database user (erp.dsn)", "lock", a.e.l.opts.Name, "connection", id)
			}
			a.e.post(event{kind: tried, holder: &holder{id: id}})
		case p.idle > c.opts.DeadAfter:
			dead[id] = append(dead[id], a.e)
		default:
			a.e.post(event{kind: tried, holder: &holder{id: id, host: p.host}})
		}
	}
	c.mu.Unlock()
	for id, es := range dead {
		p := procs[id]
		c.log.Warn(fmt.Sprintf("standby: the active erpsync for %s on host %s has not used its lock connection for %s: ending it (KILL CONNECTION %d) and taking over",
			sitesLabel(es), p.host, p.idle.Round(time.Millisecond), id),
			"connection", id, "state", p.command, "locks", len(es))
		err := c.killHolder(id)
		if err != nil && !answered(err) {
			c.failed(fmt.Errorf("end the dead holder's connection %d: %w", id, err))
			return c.opts.Every
		}
		if err != nil {
			c.log.Warn("standby: ending the dead holder's connection failed", "connection", id, "err", err)
			continue
		}
		c.mu.Lock()
		for _, e := range es {
			e.killed = id
			e.post(event{kind: tried})
		}
		c.mu.Unlock()
		next = 0 // take them now
	}
	return next
}

// begin begins e's term and tells e's Run. c.mu is held.
func (c *Conn) begin(e *entry) {
	e.begun = true
	e.term.Start = e.term.Now()
	e.post(event{kind: started, term: e.term, self: c.self})
}

// asks lists what a round asks: each lock held, and each lock stood by for,
// by the first running Lock of its name; the later Locks of a name (dups)
// stand by for the first. c.mu is held.
func (c *Conn) asks() (asks []ask, dups []*entry) {
	first := map[string]bool{}
	for _, e := range c.entries {
		name := e.l.opts.Name
		if first[name] {
			if e.want {
				dups = append(dups, e)
			}
			continue
		}
		first[name] = true
		if e.held || e.want {
			asks = append(asks, ask{e: e, held: e.held})
		}
	}
	return asks, dups
}

// askRows is how many locks one statement of a round asks about.
const askRows = 200

// clockExpr is the server's clock in microseconds since the epoch (UTC).
const clockExpr = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"

// query asks about asks in as few statements as it can: for a lock held,
// who holds it (IS_USED_LOCK); for another, GET_LOCK with timeout 0 (which
// answers at once) and then who holds it. The first statement also reads
// the server's clock, between before and after on the local one. A round
// always uses the connection, even with nothing to ask.
func (c *Conn) query(asks []ask) (answers []answer, server, before, after time.Time, err error) {
	answers = make([]answer, len(asks))
	for start := 0; start == 0 || start < len(asks); start += askRows {
		part := asks[start:min(start+askRows, len(asks))]
		var q strings.Builder
		args := make([]any, 0, 2*len(part))
		if start == 0 {
			q.WriteString("SELECT -1, NULL, NULL, " + clockExpr)
		} else {
			q.WriteString("SELECT -1, NULL, NULL, 0")
		}
		for i, a := range part {
			if a.held {
				fmt.Fprintf(&q, " UNION ALL SELECT %d, NULL, IS_USED_LOCK(?), 0", start+i)
				args = append(args, a.e.l.opts.Name)
			} else {
				fmt.Fprintf(&q, " UNION ALL SELECT %d, GET_LOCK(?, 0), IS_USED_LOCK(?), 0", start+i)
				args = append(args, a.e.l.opts.Name, a.e.l.opts.Name)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.QueryTimeout)
		t0 := time.Now()
		err := c.scan(ctx, q.String(), args, answers, &server)
		t1 := time.Now()
		cancel()
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, server, before, after, fmt.Errorf("the lock connection did not answer within %s", c.opts.QueryTimeout)
		}
		if err != nil {
			return nil, server, before, after, fmt.Errorf("the lock connection failed: %w", err)
		}
		if start == 0 {
			before, after = t0, t1
		}
	}
	return answers, server, before, after, nil
}

// scan runs one statement of query and fills answers by the row's index.
func (c *Conn) scan(ctx context.Context, q string, args []any, answers []answer, server *time.Time) error {
	rows, err := c.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var i, clock int64
		var a answer
		if err := rows.Scan(&i, &a.got, &a.holder, &clock); err != nil {
			return err
		}
		switch {
		case i == -1 && clock != 0:
			*server = time.UnixMicro(clock)
		case i >= 0 && int(i) < len(answers):
			answers[i] = a
		}
	}
	return rows.Err()
}

// checkAnswers says what is wrong with a round's answers: a lock held that
// the connection no longer holds, a GET_LOCK that answered NULL (an error
// on the server). Either way the connection is no longer trusted.
func (c *Conn) checkAnswers(asks []ask, answers []answer) error {
	for i, a := range asks {
		ans := answers[i]
		switch {
		case a.held && ans.holder.Int64 != c.id:
			return fmt.Errorf("the lock connection no longer holds lock %s", a.e.l.opts.Name)
		case !a.held && !ans.got.Valid:
			return fmt.Errorf("take lock %s: GET_LOCK answered NULL", a.e.l.opts.Name)
		}
	}
	return nil
}

// failed gives up the connection after err: every lock on it is lost
// (an active one stops at once), and each standby is told it could not
// ask. qmu is held.
func (c *Conn) failed(err error) {
	c.discard()
	c.mu.Lock()
	for _, e := range c.entries {
		switch {
		case e.held && e.begun:
			e.post(event{kind: lost, err: err})
			e.held, e.term, e.begun, e.want = false, nil, false, false // until its term has ended (standBy)
		case e.held:
			e.post(event{kind: lostWaiting, err: err})
			e.held, e.term, e.want = false, nil, true
		case e.want:
			e.post(event{kind: tried, err: err})
		}
	}
	c.mu.Unlock()
	c.outage.Failed(c.log, "lock connection (while it fails, this process holds no site's lock, and takes none over)", err)
}

// selfQuery reads this connection's id and its host as the server sees it.
const selfQuery = `SELECT CONNECTION_ID(), (SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID())`

// open takes a connection of its own from the pool. qmu is held.
func (c *Conn) open() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.QueryTimeout)
	defer cancel()
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	var id int64
	var host sql.NullString
	if err := conn.QueryRowContext(ctx, selfQuery).Scan(&id, &host); err != nil {
		discard(conn)
		return fmt.Errorf("connect: %w", err)
	}
	c.conn, c.id, c.self = conn, id, hostOnly(host.String)
	return nil
}

// discard closes the connection, if open. qmu is held.
func (c *Conn) discard() {
	discard(c.conn)
	c.conn, c.id = nil, 0
}

// discard closes conn itself rather than return it to the pool: the server
// then releases whatever lock it held.
func discard(conn *sql.Conn) {
	if conn == nil {
		return
	}
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// proc is a process list row.
type proc struct {
	host    string // without the port
	idle    time.Duration
	command string
}

// processQuery reads a connection's host and how long it has been in its
// current state from the process list, where a user without the PROCESS
// privilege sees its own connections (those of the same user name).
const processQuery = `SELECT HOST, TIME_MS, COMMAND FROM information_schema.PROCESSLIST WHERE ID = IF(? = 0, CONNECTION_ID(), ?)`

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

// processes reads the process list rows of connections ids; one this user
// cannot see, or gone, is missing. qmu is held.
func (c *Conn) processes(ids []int64) (map[int64]proc, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	q := "SELECT ID, HOST, TIME_MS, COMMAND FROM information_schema.PROCESSLIST WHERE ID IN (?" + strings.Repeat(", ?", len(ids)-1) + ")"
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.QueryTimeout)
	defer cancel()
	rows, err := c.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]proc{}
	for rows.Next() {
		var id int64
		var host, command sql.NullString
		var ms sql.NullFloat64
		if err := rows.Scan(&id, &host, &ms, &command); err != nil {
			return nil, err
		}
		out[id] = proc{host: hostOnly(host.String), idle: time.Duration(ms.Float64 * float64(time.Millisecond)), command: command.String}
	}
	return out, rows.Err()
}

// killHolder ends connection id (a dead holder's), which this user may do
// to its own connections. A connection already gone is no error. qmu is
// held.
func (c *Conn) killHolder(id int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.QueryTimeout)
	defer cancel()
	_, err := c.conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
	if isUnknownThread(err) {
		return nil
	}
	return err
}

// answered is true for an error the server sent about a statement, on a
// connection that still works.
func answered(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number != errConnectionKilled && me.Number != errQueryInterrupted
}

// errConnectionKilled and errQueryInterrupted are what a statement gets
// when its own connection is ended (ER_CONNECTION_KILLED, ER_QUERY_INTERRUPTED).
const (
	errConnectionKilled = 1927
	errQueryInterrupted = 1317
)

// sitesLabel names the sites of es in a log line.
func sitesLabel(es []*entry) string {
	if len(es) == 1 {
		return "site " + es[0].l.opts.Site
	}
	names := make([]string, 0, 4)
	for _, e := range es[:min(len(es), 3)] {
		names = append(names, e.l.opts.Site)
	}
	if len(es) > 3 {
		names = append(names, "…")
	}
	return fmt.Sprintf("%d sites (%s)", len(es), strings.Join(names, ", "))
}
