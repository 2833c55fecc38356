package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
	"github.com/orderweave/erpsync/site"
)

// OutboxCommand inspects the outbox and replays or purges messages, while
// the daemon runs.
type OutboxCommand struct{ stdio }

// Run runs `erpsync outbox list|show|retry|purge`.
func (c *OutboxCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("missing subcommand: list, show, retry or purge (erpsync help outbox)")
	}
	switch args[0] {
	case "list":
		return c.list(ctx, args[1:])
	case "show":
		return c.show(ctx, args[1:])
	case "retry":
		return c.retry(ctx, args[1:])
	case "purge":
		return c.purge(ctx, args[1:])
	case "help", "-h", "--help":
		c.Usage()
		return flag.ErrHelp
	}
	return usageErrorf("unknown subcommand %q: use list, show, retry or purge", args[0])
}

// Usage prints help.
func (c *OutboxCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync outbox <subcommand> [--config FILE] [--site NAME] [flags]

Inspects the durable outbox (outbox.path) and replays dead letters. Works while
the daemon runs: the daemon picks retried messages up within 5 seconds.

  list [--state dead|pending|delivered|all|quarantined] [--item CODE] [--limit N] [--json]
        messages, newest first (default: the dead letters; with --item, every
        message holding that item)
  show ID [--json] [--body] [--timestamp N]
        one message: its state and last error, then the exact request the
        daemon would send now: POST line, headers with a fresh timestamp and
        signature (the secret itself is never printed), blank line, body.
        --body prints the body bytes alone; --timestamp signs with that Unix
        time instead of now.
  retry ID… | --all-dead
        make dead messages pending again, due now. An item that has had a
        newer state queued since its message went dead is superseded: its
        older state is never sent again. A message whose items are all
        superseded stays dead (say so, and 'erpsync resync --item CODE'
        sends the current state); a message with some superseded goes
        without them, under a new delivery id
  purge --delivered [--older-than DURATION]
        delete delivered messages (history only: what was delivered stays
        recorded per item)
  purge --dead ID… | --all-dead
        delete dead letters for good; the receiver keeps its older state of
        their items until they change, a reconciliation sweep runs, or
        'erpsync resync --item' sends them

ID is the message number (first column of list) or its delivery id.

Examples:
	sudo erpsync outbox list
	sudo erpsync outbox show 42
	sudo erpsync outbox show 42 --body | sudo erpsync verify --no-window --timestamp 1700000000 --signature …
	sudo erpsync outbox retry --all-dead
	sudo erpsync outbox purge --delivered --older-than 720h
`)
}

// outboxFlags are the flags every subcommand has.
type outboxFlags struct {
	fs         *flag.FlagSet
	configPath *string
	siteName   *string
}

func (c *OutboxCommand) flags(name string) outboxFlags {
	fs := newFlagSet("outbox "+name, c.stderr, c.Usage)
	return outboxFlags{fs: fs, configPath: configFlag(fs), siteName: siteFlag(fs)}
}

// parseArgs parses flags and positional arguments in any order.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{msg: err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// open reads the settings and opens the existing outbox.
func (f outboxFlags) open(ctx context.Context) (*config.Site, *outbox.Outbox, error) {
	cfg, err := readSite(*f.configPath, *f.siteName)
	if err != nil {
		return nil, nil, err
	}
	ob, err := openExistingOutbox(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, ob, nil
}

// outboxMessage is a message as list and show print it in JSON.
type outboxMessage struct {
	ID            int64               `json:"id"`
	DeliveryID    string              `json:"delivery_id"`
	State         string              `json:"state"`
	Items         []outboxMessageItem `json:"items"`
	Attempts      int                 `json:"attempts"`
	LastStatus    int                 `json:"last_status,omitempty"`
	LastError     string              `json:"last_error,omitempty"`
	CreatedAt     time.Time           `json:"created_at"`
	UpdatedAt     time.Time           `json:"updated_at"`
	NextAttemptAt *time.Time          `json:"next_attempt_at,omitempty"`
	DeliveredAt   *time.Time          `json:"delivered_at,omitempty"`
}

type outboxMessageItem struct {
	Code    string `json:"item_code"`
	Op      string `json:"op"`
	Version int64  `json:"version"`
}

func toOutboxMessage(m outbox.Message) outboxMessage {
	out := outboxMessage{
		ID: m.ID, DeliveryID: m.DeliveryID, State: string(m.State), Attempts: m.Attempts,
		LastStatus: m.LastStatus, LastError: m.LastError, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		Items: make([]outboxMessageItem, len(m.Items)),
	}
	for i, it := range m.Items {
		out.Items[i] = outboxMessageItem{Code: it.Code, Op: it.Op, Version: it.Version}
	}
	if !m.NextAttemptAt.IsZero() {
		t := m.NextAttemptAt
		out.NextAttemptAt = &t
	}
	if !m.DeliveredAt.IsZero() {
		t := m.DeliveredAt
		out.DeliveredAt = &t
	}
	return out
}

func itemCodes(m outbox.Message) []string {
	codes := make([]string, len(m.Items))
	for i, it := range m.Items {
		codes[i] = it.Code
	}
	return codes
}

func (c *OutboxCommand) list(ctx context.Context, args []string) error {
	f := c.flags("list")
	stateFlag := f.fs.String("state", "", "dead, pending, delivered, all, or quarantined (items that cannot be built) (default dead; all with --item)")
	item := f.fs.String("item", "", "only messages holding this item code")
	limit := f.fs.Int("limit", 50, "at most this many messages (0: no limit)")
	asJSON := f.fs.Bool("json", false, "print JSON for machines")
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	var state outbox.State
	switch *stateFlag {
	case "":
		if *item == "" {
			state = outbox.Dead
		}
	case "all", "quarantined":
	case "dead", "pending", "delivered":
		state = outbox.State(*stateFlag)
	default:
		return usageErrorf("--state %q: use dead, pending, delivered, all or quarantined", *stateFlag)
	}
	_, ob, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer ob.Close()
	quarantined, more, err := site.Quarantined(ctx, ob)
	if err != nil {
		return err
	}
	if *stateFlag == "quarantined" {
		return c.listQuarantined(quarantined, more, *asJSON)
	}
	if !*asJSON && len(quarantined)+more > 0 {
		defer fmt.Fprintf(c.stdout, "\n%d item(s) quarantined: they cannot be built from their values and are not sent until they can (erpsync outbox list --state quarantined)\n", len(quarantined)+more)
	}
	var msgs []outbox.Message
	if *item != "" {
		all, err := ob.ItemMessages(ctx, *item, 0)
		if err != nil {
			return err
		}
		for _, m := range all {
			if (state == "" || m.State == state) && (*limit <= 0 || len(msgs) < *limit) {
				msgs = append(msgs, m)
			}
		}
	} else if msgs, err = ob.List(ctx, state, *limit); err != nil {
		return err
	}
	if *asJSON {
		out := make([]outboxMessage, len(msgs))
		for i, m := range msgs {
			out[i] = toOutboxMessage(m)
		}
		return printJSON(c.stdout, out)
	}
	if len(msgs) == 0 {
		what := "messages"
		if state != "" {
			what = string(state) + " messages"
		}
		if *item != "" {
			what += " holding item " + *item
		}
		fmt.Fprintf(c.stdout, "no %s\n", what)
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDELIVERY ID\tSTATE\tATTEMPTS\tSTATUS\tCREATED\tITEMS\tLAST ERROR")
	for _, m := range msgs {
		status := "-"
		if m.LastStatus != 0 {
			status = strconv.Itoa(m.LastStatus)
		}
		lastErr := oneLine(m.LastError, 80)
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.DeliveryID, m.State, m.Attempts, status,
			m.CreatedAt.Local().Format("2006-01-02 15:04:05"), client.ItemList(itemCodes(m)), lastErr)
	}
	return tw.Flush()
}

// getMessage finds a message by number or delivery id.
func getMessage(ctx context.Context, ob *outbox.Outbox, ref string) (outbox.Message, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return ob.Get(ctx, id)
	}
	return ob.GetByDeliveryID(ctx, ref)
}

// requestHeaders returns the headers the client sends with body, signed at
// timestamp ts, in the order it sets them.
func requestHeaders(cfg *config.Site, deliveryID string, ts int64, body []byte) [][2]string {
	return [][2]string{
		{"Content-Type", "application/json"},
		{"User-Agent", "erpsync/" + version},
		{signer.HeaderTenant, cfg.Tenant.ID},
		{signer.HeaderDeliveryID, deliveryID},
		{signer.HeaderTimestamp, strconv.FormatInt(ts, 10)},
		{signer.HeaderSignature, signer.Sign(cfg.Tenant.Key(), ts, body)},
	}
}

func (c *OutboxCommand) show(ctx context.Context, args []string) error {
	f := c.flags("show")
	asJSON := f.fs.Bool("json", false, "print JSON for machines")
	bodyOnly := f.fs.Bool("body", false, "print only the body, byte for byte")
	ts := f.fs.Int64("timestamp", 0, "sign with this Unix time (default now)")
	pos, err := parseArgs(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("show takes one message ID (the number from 'erpsync outbox list', or a delivery id)")
	}
	cfg, ob, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer ob.Close()
	m, err := getMessage(ctx, ob, pos[0])
	if err != nil {
		return err
	}
	if *bodyOnly {
		_, err := c.stdout.Write(m.Body)
		return err
	}
	if *ts == 0 {
		*ts = time.Now().Unix()
	}
	headers := requestHeaders(cfg, m.DeliveryID, *ts, m.Body)
	if *asJSON {
		h := make(map[string]string, len(headers))
		for _, kv := range headers {
			h[kv[0]] = kv[1]
		}
		return printJSON(c.stdout, struct {
			outboxMessage
			Request struct {
				Method  string            `json:"method"`
				URL     string            `json:"url"`
				Headers map[string]string `json:"headers"`
				Body    string            `json:"body"`
			} `json:"request"`
		}{outboxMessage: toOutboxMessage(m), Request: struct {
			Method  string            `json:"method"`
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}{"POST", cfg.Ingest.URL, h, string(m.Body)}})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("message", strconv.FormatInt(m.ID, 10))
	row("delivery id", m.DeliveryID)
	row("state", string(m.State))
	var items []string
	for _, it := range m.Items {
		items = append(items, fmt.Sprintf("%s (%s, version %d)", it.Code, it.Op, it.Version))
	}
	row("items", strings.Join(items, ", "))
	row("attempts", strconv.Itoa(m.Attempts))
	if m.LastStatus != 0 {
		row("last status", strconv.Itoa(m.LastStatus))
	}
	if m.LastError != "" {
		row("last error", oneLine(m.LastError, 2000))
	}
	row("created", m.CreatedAt.Local().Format(time.RFC3339))
	if !m.NextAttemptAt.IsZero() {
		row("next attempt", m.NextAttemptAt.Local().Format(time.RFC3339))
	}
	if !m.DeliveredAt.IsZero() {
		row("delivered", m.DeliveredAt.Local().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nThe request as it would be sent now (%d bytes of body):\n\n", len(m.Body))
	fmt.Fprintf(c.stdout, "POST %s\n", cfg.Ingest.URL)
	for _, kv := range headers {
		fmt.Fprintf(c.stdout, "%s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintln(c.stdout)
	c.stdout.Write(m.Body)
	_, err = fmt.Fprintln(c.stdout)
	return err
}

func (c *OutboxCommand) retry(ctx context.Context, args []string) error {
	f := c.flags("retry")
	allDead := f.fs.Bool("all-dead", false, "retry every dead message")
	pos, err := parseArgs(f.fs, args)
	if err != nil {
		return err
	}
	if (len(pos) == 0) == !*allDead {
		return usageErrorf("retry takes message IDs or --all-dead (not both)")
	}
	cfg, ob, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer ob.Close()
	msgs, err := c.selectMessages(ctx, ob, pos, *allDead)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		fmt.Fprintln(c.stdout, "no dead messages: nothing to retry")
		return nil
	}
	now := time.Now()
	var errs []error
	retried := 0
	for _, m := range msgs {
		if m.State == outbox.Delivered {
			errs = append(errs, fmt.Errorf("message %d was delivered %s: nothing to retry (to send its items again: erpsync resync --item CODE)",
				m.ID, m.DeliveredAt.Local().Format(time.RFC3339)))
			continue
		}
		var sent outbox.NewMessage
		superseded, err := ob.RetryCurrent(ctx, m.ID, now, func(old outbox.Message, superseded map[string]bool) (outbox.NewMessage, error) {
			n, err := withoutItems(cfg.Tenant.ID, old, superseded)
			sent = n
			return n, err
		})
		var se *outbox.SupersededError
		switch {
		case errors.As(err, &se):
			// Every item has had a newer state since: its older states
			// must not reach the receiver after the newer ones.
			errs = append(errs, fmt.Errorf("message %d (items %s) is superseded: each of its items has had a newer state queued since it went dead, so its older states are not sent again; "+
				"to send their current state: erpsync resync --item %s; to drop this dead letter: erpsync outbox purge --dead %d",
				m.ID, client.ItemList(se.Items), strings.Join(se.Items, ","), m.ID))
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		retried++
		if len(superseded) == 0 {
			fmt.Fprintf(c.stdout, "message %d (delivery id %s, items %s) is pending again\n", m.ID, m.DeliveryID, client.ItemList(itemCodes(m)))
			continue
		}
		kept := make([]string, len(sent.Items))
		for i, it := range sent.Items {
			kept[i] = it.Code
		}
		fmt.Fprintf(c.stdout, "message %d is pending again without items %s: they have had a newer state queued since it went dead (superseded), and their older states are not sent; "+
			"items %s go under the new delivery id %s\n", m.ID, client.ItemList(superseded), client.ItemList(kept), sent.DeliveryID)
	}
	if retried > 0 {
		fmt.Fprintf(c.stdout, "%d message(s) due now: a running daemon sends them within a few seconds\n", retried)
	}
	return errors.Join(errs...)
}

// withoutItems returns the message to send again of dead message m: the
// entries of its body but those of the superseded items, in a body of their
// own under a new delivery id (a delivery id never names two contents).
func withoutItems(tenant string, m outbox.Message, superseded map[string]bool) (outbox.NewMessage, error) {
	raw, err := signer.BodyItems(m.Body)
	if err != nil || len(raw) != len(m.Items) {
		return outbox.NewMessage{}, fmt.Errorf("message %d: body does not match its items", m.ID)
	}
	id, err := signer.NewDeliveryID()
	if err != nil {
		return outbox.NewMessage{}, err
	}
	var items []outbox.MessageItem
	var entries [][]byte
	for i, it := range m.Items {
		if !superseded[it.Code] {
			items = append(items, it)
			entries = append(entries, raw[i])
		}
	}
	body, err := signer.Body(id, tenant, entries)
	if err != nil {
		return outbox.NewMessage{}, err
	}
	return outbox.NewMessage{DeliveryID: id, Items: items, Body: body}, nil
}

// selectMessages resolves IDs, or lists every dead message.
func (c *OutboxCommand) selectMessages(ctx context.Context, ob *outbox.Outbox, refs []string, allDead bool) ([]outbox.Message, error) {
	if allDead {
		return ob.List(ctx, outbox.Dead, 0)
	}
	var msgs []outbox.Message
	for _, ref := range refs {
		m, err := getMessage(ctx, ob, ref)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// deadPurger is the outbox method purge --dead needs (see the report to the
// lead: outbox.(*Outbox).PurgeDead).
type deadPurger interface {
	PurgeDead(ctx context.Context, ids []int64) (int64, error)
}

func (c *OutboxCommand) purge(ctx context.Context, args []string) error {
	f := c.flags("purge")
	delivered := f.fs.Bool("delivered", false, "delete delivered messages")
	olderThan := f.fs.Duration("older-than", 0, "with --delivered: only those delivered longer ago than this, e.g. 720h")
	dead := f.fs.Bool("dead", false, "delete the dead messages given by ID")
	allDead := f.fs.Bool("all-dead", false, "delete every dead message")
	pos, err := parseArgs(f.fs, args)
	if err != nil {
		return err
	}
	switch {
	case *delivered && (*dead || *allDead || len(pos) > 0):
		return usageErrorf("purge either --delivered or dead messages, not both")
	case *delivered:
	case *allDead && len(pos) > 0, *dead && len(pos) == 0 && !*allDead:
		return usageErrorf("purge --dead takes message IDs; purge --all-dead takes none")
	case !*dead && !*allDead:
		return usageErrorf("say what to purge: --delivered, --dead ID…, or --all-dead")
	}
	if *olderThan < 0 {
		return usageErrorf("--older-than must not be negative")
	}
	_, ob, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer ob.Close()
	if *delivered {
		n, err := ob.PruneDelivered(ctx, time.Now().Add(-*olderThan))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "deleted %d delivered message(s)\n", n)
		return nil
	}
	p, ok := any(ob).(deadPurger)
	if !ok {
		return errors.New("this erpsync's outbox cannot delete dead messages yet; retry them (erpsync outbox retry) or leave them")
	}
	msgs, err := c.selectMessages(ctx, ob, pos, *allDead)
	if err != nil {
		return err
	}
	var ids []int64
	for _, m := range msgs {
		if m.State != outbox.Dead {
			return fmt.Errorf("message %d is %s, not dead: only dead messages can be purged", m.ID, m.State)
		}
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 {
		fmt.Fprintln(c.stdout, "no dead messages: nothing to purge")
		return nil
	}
	n, err := p.PurgeDead(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "deleted %d dead message(s); their items are sent again when they next change, at the next reconciliation sweep, or with erpsync resync --item CODE\n", n)
	return nil
}

// listQuarantined prints the items that cannot be built and why.
func (c *OutboxCommand) listQuarantined(quarantined []site.Quarantine, more int, asJSON bool) error {
	if asJSON {
		return printJSON(c.stdout, quarantined)
	}
	if len(quarantined) == 0 {
		fmt.Fprintln(c.stdout, "no quarantined items")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ITEM\tSINCE\tCOLUMN\tVALUE\tREASON")
	for _, q := range quarantined {
		fmt.Fprintf(tw, "%q\t%s\t%s\t%s\t%s\n", q.Code, q.Since.Local().Format("2006-01-02 15:04:05"), q.Column, q.Value, oneLine(q.Reason, 120))
	}
	if more > 0 {
		fmt.Fprintf(tw, "… and %d more not kept\t\t\t\t\n", more)
	}
	return tw.Flush()
}
