package site

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/binlog"
	"github.com/orderweave/erpsync/internal/retry"
	"github.com/orderweave/erpsync/internal/tick"
)

// safetyNetMin is the least time between two full polls of a site that a
// server probe wakes: the regular poll that catches what the probe cannot
// see, spread over the sites by a per-site offset.
const safetyNetMin = 30 * time.Second

// serverConns is the size of the one pool that the sites of a database
// server (the same address and user) share with its probe: hundreds of sites
// stay well under the server's max_connections.
const serverConns = 10

// serverIdleConn is how long the shared pool keeps an idle connection.
const serverIdleConn = time.Minute

// Servers lets the sites on one database server (the same address and user)
// share one pool and one probe, so that what an idle server costs does not
// grow with its number of sites:
//   - every erp.poll_interval the probe reads the server's change mark
//     (InnoDB's log sequence number, detector.ReadChangeMark); only when it
//     moved does it read when each site's polled tables last changed
//     (detector.ReadUpdateTimes) and wake the sites whose tables changed;
//   - with erp.watch, it reads the binary log's files from where it left off
//     (internal/binlog) on each commit and wakes just the sites whose schemas
//     the commits wrote; the sites' tables are not probed then (unless the
//     log cannot tell, or cannot be read);
//   - each site still polls on its own every max(erp.poll_interval, 30 s),
//     at an offset of its own: the safety net for what neither sees.
//
// One Servers serves a whole `erpsync run`; the zero value is not usable,
// see NewServers.
type Servers struct {
	logger *slog.Logger

	mu      sync.Mutex
	servers map[string]*server
	pools   map[string]*pool
	locks   map[string]*lockConn // the lock connection of each server (ha_servers.go)

	starts *startGate // the sites starting now (starts.go)
}

// pool is the connection pool of one database server, shared by its sites
// and its probe; it is closed when the last of them releases it.
type pool struct {
	db    *sql.DB
	users int
}

// NewServers returns an empty Servers; logger is the sync log.
func NewServers(logger *slog.Logger) *Servers {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Servers{logger: logger, servers: map[string]*server{}, pools: map[string]*pool{}, starts: newStartGate(startsAtOnce, startHold)}
}

// server is one database server's probe and the sites it watches.
type server struct {
	logger  *slog.Logger
	key     string
	db      *sql.DB
	release func()        // of the shared pool db
	kick    chan struct{} // probe now (a commit in the binary log)
	stop    context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	members map[*member]bool
	watch   bool // a binary log watch runs

	// mark is the server's change mark (detector.ReadChangeMark) when the
	// last full probe read the sites' tables; "" before one succeeded.
	mark string
	// cachesFor is the number of sites the table caches were last checked
	// for (checkCaches), at cachesChecked.
	cachesFor     int
	cachesChecked time.Time
	// probes and skipped count full probes run and probes the mark saved
	// (for tests); logged counts the reads of the binary log.
	probes, skipped, logged int

	// log follows the binary log's files (erp.watch) and says which
	// schemas commits wrote: then only those sites are woken, and the sites'
	// tables are not probed. nil: not (yet) readable, the probe runs.
	log *binlog.Tail
	// logDir is the binary log's directory (erp.watch), "" without a
	// watch; logRetry is when to try to open it again after a failure.
	logDir   string
	logRetry time.Time
}

// member is one running site of a server.
type member struct {
	schema   string
	interval time.Duration
	wake     func()

	last  string // the UPDATE_TIMEs of the last probe
	known bool   // last was read at least once
	hot   bool   // the last change was recent: a commit since may not have moved UPDATE_TIME
	// hotUntil is when, by this host's clock, the change that made the site
	// hot is hotFor old on the server's (with a second's margin for the
	// whole seconds it is read in): a probe after it that finds the change
	// mark unmoved knows no commit came in that time, and the site cools.
	hotUntil time.Time

	// logged is when the binary log last named the site's schema: until
	// hotFor after it, every interval wakes the site (a commit is written to
	// the binary log just before it becomes visible).
	logged time.Time
}

// join adds a running site to the probe of its server, starting it (and the
// binary log watch of watch, if any) with the first site; leave removes it,
// stopping the probe with the last. ok is false when dsn names no server.
func (s *Servers) join(dsn string, interval time.Duration, watch string, debounce time.Duration, wake func()) (leave func(), safety func() time.Duration, ok bool) {
	key, schema, ok := detector.ServerKey(dsn)
	if !ok || schema == "" {
		return nil, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.servers[key]
	if sv == nil {
		db, release, err := s.acquire(key, dsn)
		if err != nil {
			return nil, nil, false
		}
		ctx, stop := context.WithCancel(context.Background())
		sv = &server{key: key, db: db, release: release, logger: s.logger, kick: make(chan struct{}, 1), stop: stop, done: make(chan struct{}), members: map[*member]bool{}}
		s.servers[key] = sv
		go sv.run(ctx)
	}
	m := &member{schema: schema, interval: interval, wake: wake}
	sv.mu.Lock()
	sv.members[m] = true
	startWatch := watch != "" && !sv.watch
	sv.watch = sv.watch || watch != ""
	if startWatch {
		sv.logDir = watch
	}
	sv.mu.Unlock()
	if startWatch {
		go sv.watchBinlog(watch, debounce)
	}
	sv.probeNow()
	return func() { s.leave(sv, m) }, func() time.Duration { return sv.safetyNet(interval) }, true
}

// leave removes m from sv, and sv when m was its last site.
func (s *Servers) leave(sv *server, m *member) {
	s.mu.Lock()
	sv.mu.Lock()
	delete(sv.members, m)
	last := len(sv.members) == 0
	sv.mu.Unlock()
	if last {
		delete(s.servers, sv.key)
	}
	s.mu.Unlock()
	if last {
		sv.stop()
		<-sv.done
		sv.release()
	}
}

// Pool returns the connection pool that the sites on dsn's database server
// (its address and user) share, at most serverConns connections, and the
// site's database (which the detector qualifies its tables with: the pool's
// connections are in information_schema). release gives it back; the last
// release closes it. ok is false when dsn names no database: the site opens a
// pool of its own.
func (s *Servers) Pool(dsn string) (db *sql.DB, schema string, release func(), ok bool, err error) {
	key, schema, ok := detector.ServerKey(dsn)
	if !ok || schema == "" {
		return nil, "", nil, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	db, release, err = s.acquire(key, dsn)
	return db, schema, release, err == nil, err
}

// acquire returns the pool of key, opening it on dsn's server for the first
// user; s.mu is held.
func (s *Servers) acquire(key, dsn string) (*sql.DB, func(), error) {
	pl := s.pools[key]
	if pl == nil {
		db, err := detector.OpenServer(dsn, serverConns)
		if err != nil {
			return nil, nil, err
		}
		db.SetConnMaxIdleTime(serverIdleConn)
		pl = &pool{db: db}
		s.pools[key] = pl
	}
	pl.users++
	var once sync.Once
	return pl.db, func() { once.Do(func() { s.releasePool(key, pl) }) }, nil
}

// releasePool gives one use of pl back, closing it after the last.
func (s *Servers) releasePool(key string, pl *pool) {
	s.mu.Lock()
	pl.users--
	last := pl.users == 0
	if last {
		delete(s.pools, key)
	}
	s.mu.Unlock()
	if last {
		pl.db.Close()
	}
}

// probeNow runs the probe at once.
func (sv *server) probeNow() {
	select {
	case sv.kick <- struct{}{}:
	default:
	}
}

// run probes every poll interval (the shortest of its sites'), and when
// kicked, until ctx ends.
func (sv *server) run(ctx context.Context) {
	defer close(sv.done)
	logger := sv.logger
	var outage, logOutage retry.Outage
	kicked := true
	for {
		probe := true
		tail, opened, err := sv.tail(ctx)
		if tail != nil && !opened {
			var unknown bool
			if unknown, err = sv.followLog(ctx, tail, !kicked); err != nil {
				sv.mu.Lock()
				sv.log, sv.logRetry = nil, time.Now().Add(logRetryAfter)
				sv.mu.Unlock()
			}
			probe = err != nil || unknown
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			logOutage.Failed(logger, "reading the binary log's files (erp.watch; each commit reads when every site's tables last changed meanwhile; erpsync's user must be able to read them: the mysql group)", err)
		case tail != nil:
			logOutage.Recovered(logger, "reading the binary log's files")
		}
		if probe {
			err := sv.probe(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// The sites' own polls go on every safety-net interval, and
				// report the database's outage themselves.
				outage.Failed(logger, "server probe (each site polls on its own safety net meanwhile)", err)
			} else {
				outage.Recovered(logger, "server probe")
			}
		}
		// On the grid of the interval, which the sites' own polls share
		// (detection.run): their wake-ups come together.
		t := time.NewTimer(tick.UntilNext(time.Now(), sv.interval()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-sv.kick:
			t.Stop()
			kicked = true
		case <-t.C:
			kicked = false
		}
	}
}

// tail returns the binary log reader, nil when there is none (or it could
// not be opened: err); opened is true when it was opened just now (from the
// log's end: what was committed before is for the probe to find).
func (sv *server) tail(ctx context.Context) (tail *binlog.Tail, opened bool, err error) {
	sv.mu.Lock()
	tail, dir := sv.log, sv.logDir
	retry := tail == nil && dir != "" && !time.Now().Before(sv.logRetry)
	if retry {
		sv.logRetry = time.Now().Add(logRetryAfter)
	}
	sv.mu.Unlock()
	if !retry {
		return tail, false, nil
	}
	if tail, err = binlog.Open(ctx, dir); err != nil {
		return nil, false, err
	}
	sv.mu.Lock()
	sv.log = tail
	sv.mu.Unlock()
	return tail, true, nil
}

// logRetryAfter is how long after a failure to open or read the binary log
// the probe tries to open it again.
const logRetryAfter = 30 * time.Second

// followLog reads what commits the binary log holds since the last read and
// wakes the sites whose schemas they wrote; on a tick (not a commit) it also
// wakes the sites the log named within hotFor. unknown is true when the log
// held something whose schema it cannot tell (an encrypted file, a file
// purged before it was read): then the probe must run.
func (sv *server) followLog(ctx context.Context, tail *binlog.Tail, tick bool) (unknown bool, err error) {
	ch, err := tail.Read(ctx)
	if err != nil {
		return false, err
	}
	now := time.Now()
	named := make(map[string]bool, len(ch.Schemas))
	for _, s := range ch.Schemas {
		named[s] = true
	}
	var wake []func()
	sv.mu.Lock()
	sv.logged++
	for m := range sv.members {
		switch {
		case named[m.schema]:
			m.logged = now
			wake = append(wake, m.wake)
		case tick && !m.logged.IsZero() && now.Sub(m.logged) < hotFor:
			wake = append(wake, m.wake)
		}
	}
	sv.mu.Unlock()
	for _, w := range wake {
		w()
	}
	return ch.Unknown, nil
}

// interval is the shortest poll interval of sv's sites.
func (sv *server) interval() time.Duration {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	least := time.Duration(0)
	for m := range sv.members {
		if least == 0 || m.interval < least {
			least = m.interval
		}
	}
	if least <= 0 {
		least = time.Second
	}
	return least
}

// hotFor is how long after its latest UPDATE_TIME a site is woken by every
// probe: UPDATE_TIME is the second its transaction started, so a transaction
// that started in the same second as one already seen, and commits within
// hotFor of it, does not move it. Longer transactions of that kind are found
// by the safety-net poll.
const hotFor = 3 * time.Second

// probe reads when each site's tables last changed and wakes the sites whose
// tables changed since the last probe: any table's time newer, older or NULL
// (the server restarted), a site seen for the first time, or a site whose
// latest change is within hotFor of the server's clock.
//
// It first reads the server's change mark: while it is where it was at the
// last full probe and every site was probed before, nothing was written or
// committed since, and the sites' tables are not read at all. So an idle
// server costs one status read per interval, however many sites it has.
func (sv *server) probe(ctx context.Context) error {
	asked := time.Now() // the mark is read after this
	mark, err := detector.ReadChangeMark(ctx, sv.db)
	if err != nil {
		sv.mu.Lock()
		sv.mark = ""
		sv.mu.Unlock()
		return err
	}
	sv.mu.Lock()
	schemas := make([]string, 0, len(sv.members))
	unchanged := sv.mark != "" && mark == sv.mark
	for m := range sv.members {
		schemas = append(schemas, m.schema)
		unchanged = unchanged && m.known
	}
	if unchanged {
		sv.skipped++
		// Nothing committed since the last full probe: a site whose
		// change is past hotFor by now is hot no more, and the next
		// full probe (another site's change) does not wake it.
		for m := range sv.members {
			m.hot = m.hot && !asked.After(m.hotUntil)
		}
		sv.mu.Unlock()
		return nil
	}
	// Once the sites have joined (they join one by one at start), and again
	// when more join: at most once a minute, so that one WARN names the
	// values for all of them.
	check := len(schemas) > sv.cachesFor && time.Since(sv.cachesChecked) >= time.Minute
	if check {
		sv.cachesFor, sv.cachesChecked = len(schemas), time.Now()
	}
	sv.mu.Unlock()
	if check {
		sv.checkCaches(ctx, len(schemas))
	}
	read := time.Now() // the server's clock is read just after this
	times, err := detector.ReadUpdateTimes(ctx, sv.db, schemas)
	if err != nil {
		sv.mu.Lock()
		sv.mark = ""
		sv.mu.Unlock()
		return err
	}
	sv.mu.Lock()
	sv.mark = mark
	sv.probes++
	var wake []func()
	var woken []any // schema: why, for the DEBUG log
	debug := sv.logger.Enabled(ctx, slog.LevelDebug)
	for m := range sv.members {
		u := times.Updated[m.schema]
		why := ""
		switch {
		case !m.known:
			why = "first probe"
		case u.Tables != m.last:
			why = "tables changed"
			if debug {
				why += " from " + m.last + " to " + u.Tables
			}
		case m.hot:
			why = "changed within " + hotFor.String()
		}
		if why != "" {
			wake = append(wake, m.wake)
			if debug {
				woken = append(woken, m.schema, why)
			}
		}
		m.known, m.last = true, u.Tables
		m.hot = u.Latest != "" && u.Latest >= before(times.Now, hotFor)
		if m.hot {
			m.hotUntil = hotUntil(read, times.Now, u.Latest)
		}
	}
	sv.mu.Unlock()
	for _, w := range wake {
		w()
	}
	if len(woken) > 0 {
		sv.logger.Debug("server probe woke sites", woken...)
	}
	return nil
}

// cacheHeadroom is what checkCaches leaves in MariaDB's table caches for
// the server's other users (Frappe itself) beyond the probe's tables.
const cacheHeadroom = 400

// checkCaches warns when MariaDB's table caches are too small for the probe
// of sites sites: the probe looks up every polled table of every site, and
// when they do not all fit in table_definition_cache (400 by default) and
// table_open_cache, MariaDB reads their definitions from disk again at every
// probe: about 2 s at 500 sites of 800 tables, against 0.2 s with the caches
// large enough (measured, BENCH.md).
func (sv *server) checkCaches(ctx context.Context, sites int) {
	var defs, open int
	if err := sv.db.QueryRowContext(ctx, "SELECT @@table_definition_cache, @@table_open_cache").Scan(&defs, &open); err != nil {
		return // the probe itself reports the database's trouble
	}
	need, small := cachesTooSmall(sites*len(detector.PolledTables()), defs, open)
	if !small {
		return
	}
	sv.logger.Warn(fmt.Sprintf("MariaDB's table caches are too small for the probe of %d sites, which reads %d tables after each commit: raise them, or set erp.watch (the binary log names the sites that changed)", sites, sites*len(detector.PolledTables())),
		"table_definition_cache", defs, "table_open_cache", open, "want", need,
		"fix", fmt.Sprintf("SET GLOBAL table_definition_cache = %d; SET GLOBAL table_open_cache = %d; and the same under [mysqld] in the server's configuration", max(defs, need), max(open, need)))
}

// cachesTooSmall reports whether table caches of defs definitions and open
// tables are too small for a probe of tables tables, and what to raise them
// to: the probe's tables and cacheHeadroom for the server's other users.
func cachesTooSmall(tables, defs, open int) (need int, small bool) {
	return tables + cacheHeadroom, defs < tables || open < tables
}

// hotUntil is when, by this host's clock, a change at latest is hotFor old
// on the server's, with a second's margin, given that the server's clock
// read serverNow at local (both as the server prints them, whole seconds);
// local itself when either does not parse.
func hotUntil(local time.Time, serverNow, latest string) time.Time {
	now, err1 := time.Parse(time.DateTime, serverNow)
	at, err2 := time.Parse(time.DateTime, latest)
	if err1 != nil || err2 != nil {
		return local
	}
	return local.Add(at.Add(hotFor + time.Second).Sub(now))
}

// before is the time d before now, both as the server prints them
// ("2006-01-02 15:04:05"); now itself when it does not parse.
func before(now string, d time.Duration) string {
	const layout = time.DateTime
	t, err := time.Parse(layout, now)
	if err != nil {
		return now
	}
	return t.Add(-d).Format(layout)
}

// watchBinlog runs the probe on every commit the server writes to its binary
// log (erp.watch), until the probe stops.
func (sv *server) watchBinlog(dir string, debounce time.Duration) {
	logger := sv.logger
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sv.done
		cancel()
	}()
	var outage retry.Outage
	for attempt := 1; ; attempt++ {
		err := detector.Watch(ctx, dir, debounce, sv.probeNow)
		if ctx.Err() != nil {
			return
		}
		outage.Failed(logger, "binary log watch (erp.watch; probing every erp.poll_interval meanwhile)", err)
		if !retry.Sleep(ctx, retry.Backoff(attempt, 30*time.Second)) {
			return
		}
	}
}

// safetyPerSite spreads the sites' own polls over time: with n sites on a
// server each polls by itself every n × safetyPerSite when that is longer
// than safetyNetMin, so that the server sees at most 1/safetyPerSite of
// those polls a second (1.25), however many sites it has. An idle site's
// poll is some 20 queries of MariaDB: at 500 sites, 2.5 a second cost 2.2%
// of a core in mariadbd and 1.5% in erpsync.
const safetyPerSite = 800 * time.Millisecond

// safetyNet is how often a site of sv that the probe wakes polls anyway,
// given its poll interval: max(interval, safetyNetMin, sites × safetyPerSite).
func (sv *server) safetyNet(interval time.Duration) time.Duration {
	sv.mu.Lock()
	n := len(sv.members)
	sv.mu.Unlock()
	return max(interval, safetyNetMin, time.Duration(n)*safetyPerSite)
}

// safetyOffset is where in every the polls of the site named name fall,
// spread by its name.
func safetyOffset(every time.Duration, name string) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(name))
	return time.Duration(h.Sum64() % uint64(every))
}
