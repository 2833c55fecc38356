package site

import (
	"context"
	"sync"
	"time"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/metrics"
	"github.com/orderweave/erpsync/outbox"
)

// Metrics are the Prometheus metrics of every site of the process, labelled
// by site.
type Metrics struct {
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
	settings       *metrics.Gauge
}

// NewMetrics registers the sites' metrics, and erpsync_build_info for
// version, in r.
func NewMetrics(r *metrics.Registry, version string) *Metrics {
	m := &Metrics{
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
		siteUp: r.Gauge("erpsync_site_up",
			"1 while the site runs, 0 while it is down (it could not start: erpsync status and the sync log say why).", "site"),
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
}

// maxOrigins bounds the memory spent on end-to-end latency.
const maxOrigins = 200_000

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

// watchOutbox keeps the backlog gauges current.
func (s *siteMetrics) watchOutbox(ctx context.Context, ob *outbox.Outbox, now func() time.Time) {
	if s == nil {
		return
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if st, err := ob.Stats(ctx); err == nil {
			s.m.backlog.With(s.site).Set(float64(st.Pending))
			s.m.dead.With(s.site).Set(float64(st.Dead))
			age := 0.0
			if !st.OldestPending.IsZero() {
				age = max(now().Sub(st.OldestPending), 0).Seconds()
			}
			s.m.oldestAge.With(s.site).Set(age)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
