package site

import (
	"context"
	"sync"
	"time"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/ha"
	"github.com/orderweave/erpsync/internal/metrics"
	"github.com/orderweave/erpsync/internal/tick"
	"github.com/orderweave/erpsync/outbox"
)

// Metrics are the Prometheus metrics of every site of the process, labelled
// by site.
type Metrics struct {
	reg            *metrics.Registry
	detectionLag   *metrics.Gauge
	queued         *metrics.Counter
	lastPoll       *metrics.Gauge
	backlog        *metrics.Gauge
	dead           *metrics.Gauge
	oldestAge      *metrics.Gauge
	deliveries     *metrics.Counter
	hmacRejections *metrics.Counter
	latency        *metrics.Histogram
	lastSuccess    *metrics.Gauge
	siteUp         *metrics.Gauge
	quarantined    *metrics.Gauge
	paused         *metrics.Gauge
	alarmPending   *metrics.Gauge
	alarmAge       *metrics.Gauge
	settings       *metrics.Gauge
	haActive       *metrics.Gauge
	haSince        *metrics.Gauge
	haHost         *metrics.Gauge
}

// NewMetrics registers the sites' metrics, and erpsync_build_info for
// version, in r.
func NewMetrics(r *metrics.Registry, version string) *Metrics {
	m := &Metrics{
		reg: r,
		detectionLag: r.Gauge("erpsync_detection_lag_seconds",
			"Time from a row's modified stamp to the moment its item was queued, for the last batch of each source.", "site", "source"),
		queued: r.Counter("erpsync_items_queued_total",
			"Item states queued for delivery, by what found them.", "site", "source"),
		lastPoll: r.Gauge("erpsync_last_poll_timestamp_seconds",
			"When detection last finished a poll of every source.", "site"),
		backlog: r.Gauge("erpsync_backlog_messages",
			"Messages waiting for delivery.", "site"),
		dead: r.Gauge("erpsync_dead_messages",
			"Dead-lettered messages kept for an operator.", "site"),
		oldestAge: r.Gauge("erpsync_backlog_oldest_age_seconds",
			"Age of the oldest message waiting for delivery (0 when none).", "site"),
		deliveries: r.Counter("erpsync_deliveries_total",
			"Delivery calls by outcome: delivered, transient, unauthorized, too_large, rejected, gone.", "site", "outcome"),
		hmacRejections: r.Counter("erpsync_hmac_rejections_total",
			"Deliveries the ingestion service rejected with 401 or 403.", "site"),
		latency: r.Histogram("erpsync_end_to_end_latency_seconds",
			"Time from a change's modified stamp in ERPNext to its acceptance by the ingestion service.", metrics.DefaultBuckets, "site"),
		lastSuccess: r.Gauge("erpsync_last_success_timestamp_seconds",
			"When a delivery last succeeded.", "site"),
		quarantined: r.Gauge("erpsync_quarantined_items",
			"Items that cannot be built from their values and are not sent until they can (erpsync status lists them).", "site"),
		settings: r.Gauge("erpsync_settings_problems",
			"Price lists, warehouses and item groups the settings name that do not exist, are disabled or were renamed (the sync log names them).", "site"),
		paused: r.Gauge("erpsync_delivery_paused",
			"1 while the endpoint itself pauses the site's delivery, by reason: unauthorized (401/403: the secret or the clock), misdirected (3xx/404/405: ingest.url), gone (410); every message is kept.", "site", "reason"),
		alarmPending: r.Gauge("erpsync_outbox_alarm_pending",
			"outbox.alarm_pending: the backlog (pending and dead messages) that raises the backlog alarm; 0 = off.", "site"),
		alarmAge: r.Gauge("erpsync_outbox_alarm_age_seconds",
			"outbox.alarm_age in seconds: the age of the oldest waiting message that raises the backlog alarm; 0 = off.", "site"),
		siteUp: r.Gauge("erpsync_site_up",
			"1 while the site runs, 0 while it is down (it could not start: erpsync status and the sync log say why).", "site"),
		haActive: r.Gauge("erpsync_ha_active",
			"With ha.enabled: 1 while this process holds the site's lock and runs it, 0 while it stands by.", "site"),
		haSince: r.Gauge("erpsync_ha_active_since_timestamp_seconds",
			"With ha.enabled: since when the active erpsync runs the site (this process's takeover; for a standby, when it first saw the active one).", "site"),
		haHost: r.Gauge("erpsync_ha_active_host",
			"With ha.enabled: 1 for the host (as the database server sees it) whose erpsync runs the site, 0 for hosts that ran it before.", "site", "host"),
	}
	r.Gauge("erpsync_build_info", "The erpsync version running.", "version").With(version).Set(1)
	return m
}

// siteMetrics records one site's events. A nil *siteMetrics records nothing,
// so the daemon runs the same with metrics off.
type siteMetrics struct {
	m    *Metrics
	site string

	mu     sync.Mutex
	origin map[string]time.Time // item code -> modified stamp of its oldest undelivered change
	haHost string               // the host erpsync_ha_active_host shows active
}

// maxOrigins bounds the memory spent on end-to-end latency.
const maxOrigins = 200_000

// ForgetSite stops exporting the series of the site named name: a reload
// removed it (erp.sites).
func (m *Metrics) ForgetSite(name string) {
	if m == nil {
		return
	}
	m.reg.Forget("site", name)
}

func (m *Metrics) forSite(name string) *siteMetrics {
	if m == nil {
		return nil
	}
	return &siteMetrics{m: m, site: name, origin: map[string]time.Time{}}
}

// queuedBatch records a detector batch that the writer stored: how many
// states it queued and, for polls, how far behind the rows' modified stamp
// detection ran.
func (s *siteMetrics) queuedBatch(b detector.Batch, n int, loc *time.Location, now time.Time) {
	if s == nil {
		return
	}
	source := b.Origin
	if source == "" {
		source = sourceName(b.Source)
	}
	s.m.queued.With(s.site, source).Add(float64(n))
	if b.Source == "" || b.Source == detector.SourcePriceServer || b.Cursor.Modified == "" || n == 0 {
		return // no cursor, or one on the database server's clock (not the site's zone)
	}
	stamp, err := time.ParseInLocation(detector.ModifiedLayout, b.Cursor.Modified, loc)
	if err != nil {
		return
	}
	s.m.detectionLag.With(s.site, b.Source).Set(max(now.Sub(stamp), 0).Seconds())
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range b.Items {
		if it.Problem != nil {
			continue // nothing was queued for it: no delivery would clear it
		}
		if _, ok := s.origin[it.Code]; !ok && len(s.origin) < maxOrigins {
			s.origin[it.Code] = stamp
		}
	}
}

// quarantinedItems records how many items are quarantined.
func (s *siteMetrics) quarantinedItems(n int) {
	if s == nil {
		return
	}
	s.m.quarantined.With(s.site).Set(float64(n))
}

// settingsProblems records how many names the settings give are wrong.
func (s *siteMetrics) settingsProblems(n int) {
	if s == nil {
		return
	}
	s.m.settings.With(s.site).Set(float64(n))
}

// up records whether the site runs.
func (s *siteMetrics) up(up bool) {
	if s == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	s.m.siteUp.With(s.site).Set(v)
}

// ha records the site's standby role: whether this process runs it, since
// when the active one does, and on which host.
func (s *siteMetrics) ha(st ha.Status) {
	if s == nil {
		return
	}
	active := 0.0
	if st.Role == ha.Active {
		active = 1
	}
	s.m.haActive.With(s.site).Set(active)
	if st.Since.IsZero() {
		s.m.haSince.With(s.site).Set(0)
	} else {
		s.m.haSince.With(s.site).SetTime(st.Since)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.Host == s.haHost {
		return
	}
	if s.haHost != "" {
		s.m.haHost.With(s.site, s.haHost).Set(0)
	}
	if st.Host != "" {
		s.m.haHost.With(s.site, st.Host).Set(1)
	}
	s.haHost = st.Host
}

func (s *siteMetrics) polled(now time.Time) {
	if s == nil {
		return
	}
	s.m.lastPoll.With(s.site).SetTime(now)
}

// delivered records the outcome of one delivery call (the dispatcher's
// Outcome hook).
func (s *siteMetrics) delivered(m outbox.Message, res client.Result, now time.Time) {
	if s == nil {
		return
	}
	s.m.deliveries.With(s.site, res.Outcome.String()).Inc()
	switch res.Outcome {
	case client.Unauthorized:
		s.m.hmacRejections.With(s.site).Inc()
	case client.Delivered:
		s.m.lastSuccess.With(s.site).SetTime(now)
		s.mu.Lock()
		for _, it := range m.Items {
			if t, ok := s.origin[it.Code]; ok {
				s.m.latency.With(s.site).Observe(max(now.Sub(t), 0).Seconds())
				delete(s.origin, it.Code)
			}
		}
		s.mu.Unlock()
	}
}

// watchOutbox keeps the backlog gauges current. It reads the outbox's
// counts again only after a commit (outbox Stamp): an idle site, of hundreds
// in one process, costs two stat calls every 5 s and no open connection.
// firstRead is called once the first read is done.
func (s *siteMetrics) watchOutbox(ctx context.Context, ob *outbox.Outbox, now func() time.Time, paused interface{ PauseReason() string }, cfg func() *config.Site, firstRead func()) {
	defer firstRead() // also when there are no metrics, or ctx ended first
	if s == nil {
		return
	}
	var st outbox.Stats
	var stamp outbox.Mark
	read := false
	for {
		reason := paused.PauseReason()
		for _, r := range []string{client.Unauthorized.String(), client.Misdirected.String(), client.Gone.String()} {
			v := 0.0
			if r == reason {
				v = 1
			}
			s.m.paused.With(s.site, r).Set(v)
		}
		c := cfg()
		s.m.alarmPending.With(s.site).Set(float64(c.Outbox.AlarmPending))
		s.m.alarmAge.With(s.site).Set(c.Outbox.AlarmAge.Seconds())
		if mark := ob.Stamp(); !read || mark.CommittedSince(stamp) {
			if fresh, err := ob.Stats(ctx); err == nil {
				st, stamp, read = fresh, mark, true
			}
			firstRead()
		}
		if read {
			s.m.backlog.With(s.site).Set(float64(st.Pending))
			s.m.dead.With(s.site).Set(float64(st.Dead))
			age := 0.0
			if !st.OldestPending.IsZero() {
				age = max(now().Sub(st.OldestPending), 0).Seconds()
			}
			s.m.oldestAge.With(s.site).Set(age)
		}
		// On a grid shared by every site of the process.
		t := time.NewTimer(tick.UntilNext(time.Now(), 5*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
