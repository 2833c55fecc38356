package site

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/ha"
	"github.com/orderweave/erpsync/outbox"
)

// A site with ha.enabled runs only in the erpsync process that holds the
// site's MariaDB named lock (package ha); erpsync on other hosts stands by
// and takes over when that one dies or is cut off. What this file adds to
// the pipeline:
//
//   - runStandby takes part in the election and runs the pipeline (runSite)
//     while this process holds the lock; losing it cancels the pipeline's
//     context at once.
//   - Versions and outbox times come from the database server's clock
//     (ha.Term.Now) while active, so that two hosts whose clocks differ give
//     out versions from one clock, and the version floor is raised above the
//     server's clock at takeover (takeOver).
//   - At takeover the outbox and cursors of this host are behind: detection
//     catches up from its own cursors, and a reconciliation sweep finds what
//     cursors cannot. States the receiver already has may be sent again,
//     with higher versions; none is lost.
//   - The role, since when, and the active one's host are recorded in the
//     outbox (metaHA) for `erpsync status`, and in the metrics.

// metaHA is the outbox meta key where a site with ha.enabled records its
// role: "<role>\t<since RFC 3339>\t<active one's host>\t<error>"; empty
// when erpsync run is not running.
const metaHA = "ha_state"

// HAState is a site's standby role as `erpsync run` last recorded it.
type HAState struct {
	// Role is "active" (this host runs the site) or "standby".
	Role string `json:"role"`
	// Since is when this host became active; for a standby, when it first
	// saw the active one hold the lock (zero when none was seen).
	Since time.Time `json:"since"`
	// ActiveHost is the active one's host as the database server sees it
	// ("" when unknown).
	ActiveHost string `json:"active_host"`
	// Error is why a standby cannot ask the database for the lock (it could
	// not take over); "" when it can.
	Error string `json:"error,omitempty"`
}

// ReadHAState reads what the daemon recorded of its role in the outbox;
// ok is false when nothing is recorded (ha.enabled off, or erpsync run not
// running).
func ReadHAState(ctx context.Context, ob *outbox.Outbox) (st HAState, ok bool, err error) {
	v, _, err := ob.Meta(ctx, metaHA)
	if err != nil || v == "" {
		return HAState{}, false, err
	}
	f := strings.SplitN(v, "\t", 4)
	for len(f) < 4 {
		f = append(f, "")
	}
	since, _ := time.Parse(time.RFC3339Nano, f[1])
	return HAState{Role: f[0], Since: since, ActiveHost: f[2], Error: f[3]}, true, nil
}

// format is the meta value of st.
func (st HAState) format() string {
	since := ""
	if !st.Since.IsZero() {
		since = st.Since.UTC().Format(time.RFC3339Nano)
	}
	clean := func(s string) string { return strings.Join(strings.Fields(s), " ") } // no tabs or newlines
	return st.Role + "\t" + since + "\t" + clean(st.ActiveHost) + "\t" + clean(st.Error)
}

// LockName is the name of the MariaDB named lock of the site cfg describes.
func LockName(cfg *config.Site) (string, error) {
	mc, err := mysql.ParseDSN(cfg.ERP.DSN.Reveal())
	if err != nil {
		return "", fmt.Errorf("erp.dsn is not a go-sql-driver DSN (see erpsync check) (in %s)", cfg.Path)
	}
	return ha.LockName(mc.DBName, cfg.Tenant.ID), nil
}

// runStandby runs the site under its lock until ctx ends: standby while
// another process holds it, the pipeline while this one does. It returns
// errSettingsChanged when a reload replaced the database or ha.enabled while
// it stood by (Run starts again with the new settings), or what runSite
// returns.
func (p *Pipeline) runStandby(ctx context.Context) error {
	cfg := p.config()
	name, err := LockName(cfg)
	if err != nil {
		return err
	}
	conn, release, err := p.lockConn(cfg)
	if err != nil {
		return fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
	}
	defer release()
	st := &standby{p: p, ctx: ctx}
	lock, err := conn.Lock(ha.Options{
		Name: name, Site: cfg.Label(), Logger: p.logger, Clock: p.opts.Now,
		OnChange: st.changed, OnTry: st.tried,
	})
	if err != nil {
		return err
	}
	defer p.recordHA(context.WithoutCancel(ctx), nil) // not running: status says so
	return lock.Run(ctx, func(ctx context.Context, term *ha.Term) error {
		if now := p.config(); now.ERP.DSN != cfg.ERP.DSN || !now.HA.Enabled {
			return errSettingsChanged // reloaded while standing by: take part again with the new settings
		}
		return p.runSite(ctx, term)
	})
}

// lockConn returns the connection the site's lock is held on: with
// Options.Servers, the one that the sites of its database server share
// (Servers.LockConn: one connection of the server's shared pool for all of
// them); otherwise one of its own, on a pool of its own. release gives it
// back.
func (p *Pipeline) lockConn(cfg *config.Site) (conn *ha.Conn, release func(), err error) {
	if p.opts.Servers != nil {
		conn, release, ok, err := p.opts.Servers.LockConn(cfg.ERP.DSN.Reveal())
		if err != nil || ok {
			return conn, release, err
		}
	}
	db, err := detector.Open(cfg.ERP.DSN.Reveal())
	if err != nil {
		return nil, nil, err
	}
	conn, err = ha.NewConn(db, ha.ConnOptions{Logger: p.logger})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return conn, func() { db.Close() }, nil
}

// standby is the pipeline's side of the election: it records what the
// Lock tells.
type standby struct {
	p     *Pipeline
	ctx   context.Context
	state HAState
	down  bool
	asked bool // the database answered a try once
}

// changed records a change of role or holder.
func (s *standby) changed(st ha.Status) {
	s.state = HAState{Role: st.Role.String(), Since: st.Since, ActiveHost: st.Host}
	s.p.metrics.ha(st)
	s.p.recordHA(s.ctx, &s.state)
	if st.Role == ha.Standby {
		s.p.tellReady() // started: standing by is what this process is for now
	}
}

// tried records whether a standby can ask the database: one that cannot is
// down (it could not take over), as a site that cannot start is.
func (s *standby) tried(err error) {
	switch {
	case err != nil && !s.down:
		s.down = true
		s.p.setState(s.ctx, fmt.Errorf("standby: cannot ask the database for the site's lock, so this host could not take over: %w", err))
		s.p.tellReady()
	case err == nil && (s.down || !s.asked):
		s.down, s.asked = false, true
		s.p.setState(s.ctx, nil) // standing by is not down
		if s.state.Error == "" {
			return
		}
	default:
		return
	}
	s.state.Role = ha.Standby.String()
	s.state.Error = ""
	if err != nil {
		s.state.Error = err.Error()
	}
	s.p.recordHA(s.ctx, &s.state)
}

// recordHA records st in the outbox for `erpsync status` (nil: erpsync run
// is not running): in the open outbox while the pipeline runs, else in one
// opened for the purpose.
func (p *Pipeline) recordHA(ctx context.Context, st *HAState) {
	value := ""
	if st != nil {
		value = st.format()
	}
	p.mu.Lock()
	ob := p.ob
	p.mu.Unlock()
	if ob == nil {
		var err error
		if ob, err = outbox.Open(ctx, p.config().Outbox.Path); err != nil {
			p.logger.Debug("record the standby role in the outbox failed", "err", err)
			return
		}
		defer ob.Close()
	}
	if err := ob.Update(ctx, func(tx *outbox.Tx) error { return tx.SetMeta(ctx, metaHA, value) }); err != nil && ctx.Err() == nil {
		p.logger.Warn("record the standby role in the outbox failed", "err", err)
	}
}

// takeOver prepares a pipeline that starts in term, before it detects or
// delivers: versions come from the database server's clock (term.Now; the
// outbox keeps this host's clock, which delivery schedules by), the version
// floor goes above that clock (the versions the previous active one gave
// out came from it, so the new ones are higher), what this outbox still
// holds from this host's last term is queued again with new versions
// (restamp), and a reconciliation sweep is requested, since this host's
// cursors and item states are behind.
func (p *Pipeline) takeOver(ctx context.Context, term *ha.Term, ob *outbox.Outbox, w *writer, detect *detection) error {
	w.versionNow = term.Now
	w.floor.start = max(w.floor.start, term.Start.UnixMicro()+floorAhead)
	// The other host may have sent items this outbox never queued (all of
	// them, for a standby that never ran): their deletes must reach the
	// receiver all the same, those found by this term's polls and those in
	// the overlap window its first poll reads again.
	w.deleteUnsent = true
	restamped, dropped, err := restamp(ctx, ob, detect.det, w)
	if err != nil {
		return fmt.Errorf("taking over: queue again what this outbox holds from its last term: %w", err)
	}
	done, _, err := InitialSync(ctx, ob)
	if err != nil {
		return err
	}
	if done {
		detect.requestReconcile()
	}
	p.logger.Info("taking over: catching up from this host's cursors, then a reconciliation sweep (states the receiver has may be sent again, with higher versions)",
		"initial_sync_done", done, "requeued", restamped, "dropped_messages", dropped,
		"server_clock_offset", term.Offset().Round(time.Microsecond).String())
	return nil
}

// errPartlyCurrent keeps a message in restamp: not every item of it has a
// newer state pending.
var errPartlyCurrent = errors.New("some items have no newer state pending")

// restamp queues again, with versions of this term, the current state of
// every item that a pending message holds: those messages are left from
// this host's last term, and the other host may have sent newer states of
// their items since, with higher versions. A message never sent takes the
// new states in place (coalescing); one that an attempt may have reached
// the receiver with (Exposed) must keep its body, so it is dropped once
// every item of it has a newer state pending: the receiver has it already,
// or gets the newer states instead. Without this, those older states would
// reach the receiver after the newer ones (which it ignores, but they are
// older states after newer). It returns how many states it queued and
// messages it dropped.
func restamp(ctx context.Context, ob *outbox.Outbox, det *detector.Detector, w *writer) (queued, dropped int, err error) {
	pending, err := ob.List(ctx, outbox.Pending, 0)
	if err != nil || len(pending) == 0 {
		return 0, 0, err
	}
	var codes []string
	for _, m := range pending {
		for _, it := range m.Items {
			codes = append(codes, it.Code)
		}
	}
	codes = UniqueCodes(codes)
	rw := *w
	rw.force, rw.direct, rw.queued = true, nil, nil // delivery has not started: the dispatcher claims them
	page := max(det.PageSize(), 1)
	for start := 0; start < len(codes); start += page {
		built, err := det.Build(ctx, codes[start:min(start+page, len(codes))])
		if err != nil {
			return queued, dropped, err
		}
		n, err := rw.write(ctx, detector.Batch{Items: built, Origin: "takeover"})
		if err != nil {
			return queued, dropped, err
		}
		queued += n
	}
	for _, m := range pending {
		if !m.Exposed {
			continue
		}
		err := ob.Split(ctx, m.ID, w.now(), func(superseded map[string]bool) ([]outbox.NewMessage, error) {
			for _, it := range m.Items {
				if !superseded[it.Code] {
					return nil, errPartlyCurrent
				}
			}
			return nil, nil // no parts: drop it
		})
		switch {
		case err == nil:
			dropped++
		case errors.Is(err, errPartlyCurrent):
		default:
			return queued, dropped, err
		}
	}
	return queued, dropped, nil
}

// versionTime is the time versions are taken from when the writer's clock
// reads now.
func (w *writer) versionTime(now time.Time) time.Time {
	if w.versionNow == nil {
		return now
	}
	return w.versionNow()
}
