package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/site"
)

// StatusCommand prints what the daemon has done and what is waiting, read
// from the outbox (which other processes may read while the daemon runs).
type StatusCommand struct{ stdio }

// Run prints the status of the tenant in the settings file.
func (c *StatusCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("status", c.stderr, c.Usage)
	configPath, siteName := configFlag(fs), siteFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := readSite(*configPath, *siteName)
	if err != nil {
		return err
	}
	ob, err := openExistingOutbox(ctx, cfg)
	if err != nil {
		return err
	}
	defer ob.Close()
	st, err := collectStatus(ctx, cfg, ob, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, []tenantStatus{st})
	}
	return st.print(c.stdout)
}

// Usage prints help.
func (c *StatusCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync status [--config FILE] [--site NAME] [--json]

Prints, for the tenant of the settings file, what erpsync has done and what is
waiting, read from the outbox (outbox.path) while the daemon runs:

  ha              with ha.enabled: whether this host runs the site ("active
                  here since ...") or stands by ("standby; active on HOST
                  since ..."), as erpsync run last recorded it
  initial sync    done, or how far it got
  cursors         per change source, the (modified, name) position detection
                  has reached, in the site's time zone
  last detection  when the newest change was queued
  pending, dead, delivered
                  message counts; the age of the oldest pending message
  last success    when a message was last delivered
  last failure    the latest failed attempt still on record (pending or dead),
                  with its HTTP status and reason
  delivery rate   messages delivered in the last minute, hour, and per minute
                  over the last 15 minutes

A pause after 401/403 (wrong secret or clock) leaves the messages untouched
and shows only in the sync log: grep 'HMAC rejected' in log.file.
--json prints a list with one object per tenant.

Examples:
	sudo erpsync status
	sudo erpsync status --json | jq '.[0].pending'
`)
}

// tenantStatus is what `erpsync status` reports for one tenant.
type tenantStatus struct {
	Tenant           string            `json:"tenant"`
	IngestURL        string            `json:"ingest_url"`
	Outbox           string            `json:"outbox"`
	Down             *statusDown       `json:"down"`                       // the daemon could not start the site; null otherwise
	HA               *statusHA         `json:"ha,omitempty"`               // with ha.enabled: this host's role
	Quarantined      []site.Quarantine `json:"quarantined"`                // items that cannot be built and are not sent
	QuarantinedMore  int               `json:"quarantined_more,omitempty"` // quarantined past those listed
	InitialSync      string            `json:"initial_sync"`               // "done", "in progress" or "not started"
	InitialSyncAfter string            `json:"initial_sync_after,omitempty"`
	Cursors          []statusCursor    `json:"cursors"`
	LastDetection    *time.Time        `json:"last_detection"`
	Pending          int64             `json:"pending"`
	Dead             int64             `json:"dead"`
	Delivered        int64             `json:"delivered"`
	OldestPending    *time.Time        `json:"oldest_pending"`
	OldestPendingAge *float64          `json:"oldest_pending_age_seconds"`
	LastSuccess      *time.Time        `json:"last_success"`
	LastFailure      *statusFailure    `json:"last_failure"`
	Rate             statusRate        `json:"delivery_rate"`
}

// statusHA is, with ha.enabled, whether this host runs the site or stands
// by, as erpsync run last recorded it in the outbox.
type statusHA struct {
	// Role is "active", "standby", or "not running" (erpsync run is not
	// running here, or has not asked the database yet).
	Role string `json:"role"`
	// Since is when this host became active; for a standby, when it first
	// saw the active one (null when not known).
	Since *time.Time `json:"since"`
	// ActiveHost is the active erpsync's host as the database server sees
	// it (this host's own when active).
	ActiveHost string `json:"active_host,omitempty"`
	// Error is why a standby cannot ask the database for the lock.
	Error string `json:"error,omitempty"`
}

// statusDown is why the daemon could not start the site, and since when.
type statusDown struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

type statusCursor struct {
	Source   string `json:"source"`
	Modified string `json:"modified"`
	Name     string `json:"name"`
}

type statusFailure struct {
	At         time.Time `json:"at"`
	MessageID  int64     `json:"message_id"`
	DeliveryID string    `json:"delivery_id"`
	State      string    `json:"state"`
	Status     int       `json:"status"`
	Reason     string    `json:"reason"`
	Items      []string  `json:"items"`
	Attempts   int       `json:"attempts"`
}

type statusRate struct {
	LastMinute   int64   `json:"last_minute"`
	LastHour     int64   `json:"last_hour"`
	PerMinute15m float64 `json:"per_minute_15m"`
	// AtLeast is true when more messages were delivered than status looks
	// at (rateWindow), so the figures are lower bounds.
	AtLeast bool `json:"at_least"`
}

const (
	rateWindow   = 5000 // newest delivered messages looked at for the rate
	failureProbe = 100  // oldest pending messages looked at for the last failure
)

// openExistingOutbox opens the outbox of cfg for an operator command. Unlike
// outbox.Open it never creates the file.
func openExistingOutbox(ctx context.Context, cfg *config.Site) (*outbox.Outbox, error) {
	path := cfg.Outbox.Path
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no outbox at %s: has erpsync run yet? (outbox.path in %s)", path, cfg.Path)
	} else if err != nil {
		return nil, fmt.Errorf("outbox %s: %w: run as root or as the erpsync user (outbox.path in %s)", path, err, cfg.Path)
	}
	ob, err := outbox.Open(ctx, path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "readonly") || strings.Contains(err.Error(), "unable to open") {
			return nil, fmt.Errorf("%w: run as root or as the erpsync user (outbox.path in %s)", err, cfg.Path)
		}
		return nil, fmt.Errorf("%w (outbox.path in %s)", err, cfg.Path)
	}
	return ob, nil
}

// collectStatus reads the outbox once for the status report.
func collectStatus(ctx context.Context, cfg *config.Site, ob *outbox.Outbox, now time.Time) (tenantStatus, error) {
	st := tenantStatus{Tenant: cfg.Tenant.ID, IngestURL: cfg.Ingest.URL, Outbox: cfg.Outbox.Path}
	done, after, err := site.InitialSync(ctx, ob)
	if err != nil {
		return st, err
	}
	switch {
	case done:
		st.InitialSync = "done"
	case after != "":
		st.InitialSync, st.InitialSyncAfter = "in progress", after
	default:
		st.InitialSync = "not started"
	}
	if down, since, reason, err := site.State(ctx, ob); err != nil {
		return st, err
	} else if down {
		st.Down = &statusDown{Since: since, Reason: reason}
	}
	if cfg.HA.Enabled {
		if st.HA, err = haStatus(ctx, ob); err != nil {
			return st, err
		}
	}
	if st.Quarantined, st.QuarantinedMore, err = site.Quarantined(ctx, ob); err != nil {
		return st, err
	}
	if st.Cursors, err = statusCursors(ctx, ob); err != nil {
		return st, err
	}
	stats, err := ob.Stats(ctx)
	if err != nil {
		return st, err
	}
	st.Pending, st.Dead, st.Delivered = stats.Pending, stats.Dead, stats.Delivered
	if !stats.OldestPending.IsZero() {
		at := stats.OldestPending
		age := now.Sub(at).Seconds()
		st.OldestPending, st.OldestPendingAge = &at, &age
	}
	if !stats.LastDelivered.IsZero() {
		at := stats.LastDelivered
		st.LastSuccess = &at
	}
	newest, err := ob.List(ctx, "", 1)
	if err != nil {
		return st, err
	}
	if len(newest) > 0 {
		at := newest[0].CreatedAt
		st.LastDetection = &at
	}
	if st.LastFailure, err = lastFailure(ctx, ob, stats, now); err != nil {
		return st, err
	}
	st.Rate, err = deliveryRate(ctx, ob, stats, now)
	return st, err
}

// haStatus reads the role erpsync run recorded.
func haStatus(ctx context.Context, ob *outbox.Outbox) (*statusHA, error) {
	rec, ok, err := site.ReadHAState(ctx, ob)
	if err != nil || !ok {
		return &statusHA{Role: "not running"}, err
	}
	h := &statusHA{Role: rec.Role, ActiveHost: rec.ActiveHost, Error: rec.Error}
	if !rec.Since.IsZero() {
		h.Since = &rec.Since
	}
	return h, nil
}

// line is the status line of h.
func (h *statusHA) line() string {
	host := h.ActiveHost
	if host == "" {
		host = "an unknown host"
	}
	switch {
	case h.Role == "active":
		return "active here (" + host + ") since " + whenAgo(h.Since, "?")
	case h.Role == "standby" && h.Error != "":
		return "standby, but cannot ask the database for the lock, so it could not take over: " + oneLine(h.Error, 300)
	case h.Role == "standby" && h.Since == nil:
		return "standby; no erpsync holds the site's lock yet"
	case h.Role == "standby":
		return "standby; active on " + host + " since " + whenAgo(h.Since, "?") + " (as first seen from here)"
	}
	return "erpsync run is not running here (ha.enabled: it would stand by or take over)"
}

// statusCursors returns the detection cursors in the detector's order of
// sources.
func statusCursors(ctx context.Context, ob *outbox.Outbox) ([]statusCursor, error) {
	cursors, err := ob.Cursors(ctx)
	if err != nil {
		return nil, err
	}
	order := map[string]int{}
	for i, s := range detector.Sources() {
		order[s] = i + 1
	}
	out := []statusCursor{}
	for _, cur := range cursors {
		out = append(out, statusCursor{Source: cur.Source, Modified: cur.Modified, Name: cur.Name})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if order[a.Source] != order[b.Source] {
			return order[a.Source] < order[b.Source]
		}
		return a.Source < b.Source
	})
	return out, nil
}

// lastFailure returns the latest failed attempt on record. Failed attempts
// are recorded on the messages: the oldest pending ones (delivery goes in
// id order, so a failing endpoint shows there) and the dead letters.
func lastFailure(ctx context.Context, ob *outbox.Outbox, stats outbox.Stats, now time.Time) (*statusFailure, error) {
	var failed []outbox.Message
	if stats.Pending > 0 {
		head, err := ob.Due(ctx, now.Add(100*365*24*time.Hour), failureProbe, nil)
		if err != nil {
			return nil, err
		}
		failed = append(failed, head...)
	}
	if stats.Dead > 0 {
		dead, err := ob.List(ctx, outbox.Dead, 20)
		if err != nil {
			return nil, err
		}
		failed = append(failed, dead...)
	}
	var last *statusFailure
	for _, m := range failed {
		if m.LastError == "" && m.LastStatus == 0 {
			continue
		}
		if last != nil && !m.UpdatedAt.After(last.At) {
			continue
		}
		last = &statusFailure{
			At: m.UpdatedAt, MessageID: m.ID, DeliveryID: m.DeliveryID, State: string(m.State),
			Status: m.LastStatus, Reason: m.LastError, Items: itemCodes(m), Attempts: m.Attempts,
		}
	}
	return last, nil
}

// deliveryRate counts the messages delivered in the last minute and hour,
// and per minute over the last 15 minutes, from the newest rateWindow.
func deliveryRate(ctx context.Context, ob *outbox.Outbox, stats outbox.Stats, now time.Time) (statusRate, error) {
	var rate statusRate
	if stats.Delivered == 0 {
		return rate, nil
	}
	delivered, err := ob.List(ctx, outbox.Delivered, rateWindow)
	if err != nil {
		return rate, err
	}
	var last15 int64
	for _, m := range delivered {
		age := now.Sub(m.DeliveredAt)
		if age <= time.Minute {
			rate.LastMinute++
		}
		if age <= 15*time.Minute {
			last15++
		}
		if age <= time.Hour {
			rate.LastHour++
		}
	}
	rate.PerMinute15m = float64(last15) / 15
	rate.AtLeast = len(delivered) == rateWindow && now.Sub(delivered[len(delivered)-1].DeliveredAt) < time.Hour
	return rate, nil
}

func (st tenantStatus) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("tenant", st.Tenant)
	row("ingest.url", st.IngestURL)
	row("outbox", st.Outbox)
	if d := st.Down; d != nil {
		t := d.Since
		row("site", fmt.Sprintf("DOWN since %s: %s (the daemon retries with backoff; erpsync check says how to fix it)", whenAgo(&t, ""), oneLine(d.Reason, 300)))
	}
	if st.HA != nil {
		row("ha", st.HA.line())
	}
	sync := st.InitialSync
	if st.InitialSyncAfter != "" {
		sync += " (sent up to item " + st.InitialSyncAfter + ")"
	}
	row("initial sync", sync)
	row("last detection", whenAgo(st.LastDetection, "never"))
	pending := strconv.FormatInt(st.Pending, 10)
	if st.OldestPending != nil {
		pending += " (oldest " + shortAge(time.Duration(*st.OldestPendingAge*float64(time.Second))) + ")"
	}
	row("pending", pending)
	dead := strconv.FormatInt(st.Dead, 10)
	if st.Dead > 0 {
		dead += " (erpsync outbox list; erpsync outbox retry ID|--all-dead)"
	}
	row("dead", dead)
	row("delivered", strconv.FormatInt(st.Delivered, 10)+" (kept for outbox.retention)")
	if n := len(st.Quarantined) + st.QuarantinedMore; n > 0 {
		row("quarantined", fmt.Sprintf("%d item(s) cannot be built from their values and are not sent until they can (tried again on their next change and at the sweep):", n))
		for i, q := range st.Quarantined {
			if i == 10 {
				row("", fmt.Sprintf("… and %d more (erpsync status --json lists them)", n-10))
				break
			}
			row("", fmt.Sprintf("%s: %s %s: %s", q.Code, q.Column, q.Value, oneLine(q.Reason, 200)))
		}
	}
	row("last success", whenAgo(st.LastSuccess, "never"))
	if f := st.LastFailure; f != nil {
		t := f.At
		status := "no response"
		if f.Status != 0 {
			status = "HTTP " + strconv.Itoa(f.Status)
		}
		row("last failure", fmt.Sprintf("%s, %s, message %d (%s, %d attempts, items %s): %s",
			whenAgo(&t, ""), status, f.MessageID, f.State, f.Attempts, client.ItemList(f.Items), oneLine(f.Reason, 300)))
	} else {
		row("last failure", "none on record")
	}
	atLeast := ""
	if st.Rate.AtLeast {
		atLeast = "at least "
	}
	row("delivery rate", fmt.Sprintf("%s%d in the last minute, %d in the last hour, %.1f/min over 15 min",
		atLeast, st.Rate.LastMinute, st.Rate.LastHour, st.Rate.PerMinute15m))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SOURCE\tCURSOR (site time)\tNAME")
	if len(st.Cursors) == 0 {
		fmt.Fprintln(tw, "(none yet)\t\t")
	}
	for _, cur := range st.Cursors {
		name := cur.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", cur.Source, cur.Modified, name)
	}
	return tw.Flush()
}

// whenAgo writes t in local time with its age, or none for nil.
func whenAgo(t *time.Time, none string) string {
	if t == nil || t.IsZero() {
		return none
	}
	return t.Local().Format("2006-01-02 15:04:05 MST") + " (" + shortAge(time.Since(*t)) + " ago)"
}

// shortAge rounds d for people: 950ms, 42s, 3m12s, 5h3m, 3d4h.
func shortAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	default:
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	}
}

// oneLine folds s onto one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// printJSON writes v indented, without HTML escaping.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
