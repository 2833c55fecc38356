package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/orderweave/erpsync/signer"
)

// SignCommand prints the canonical body and signed headers of a request.
type SignCommand struct{ stdio }

// Run canonicalises the JSON on stdin and prints a curl command that sends it
// exactly as erpsync would, or with --body-only just the canonical body.
func (c *SignCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("sign", c.stderr, c.Usage)
	configPath, siteName := configFlag(fs), siteFlag(fs)
	ts := fs.Int64("timestamp", 0, "Unix time to sign with (default now)")
	bodyOnly := fs.Bool("body-only", false, "print only the canonical body (needs no settings or secret)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ts < 0 {
		return usageErrorf("--timestamp %d is not Unix seconds: give a positive number, or leave it out to sign with the current time", *ts)
	}
	raw, err := io.ReadAll(c.stdin)
	if err != nil {
		return fmt.Errorf("read body from stdin: %w", err)
	}
	body, err := signer.CanonicalizeJSON(raw)
	if err != nil {
		return fmt.Errorf("body on stdin is not valid JSON: %w", err)
	}
	if *bodyOnly {
		_, err := c.stdout.Write(body)
		return err
	}
	cfg, err := readSite(*configPath, *siteName)
	if err != nil {
		return err
	}
	if *ts == 0 {
		*ts = time.Now().Unix()
	}
	var envelope struct {
		DeliveryID string `json:"delivery_id"`
		Tenant     string `json:"tenant"`
	}
	_ = json.Unmarshal(body, &envelope)
	if envelope.DeliveryID == "" {
		fmt.Fprintln(c.stderr, `warning: the body has no "delivery_id"; a receiver that follows PROTOCOL.md rejects it`)
	}
	if envelope.Tenant != "" && envelope.Tenant != cfg.Tenant.ID {
		fmt.Fprintf(c.stderr, "warning: the body's tenant %q differs from tenant.id %q; a receiver rejects it\n", envelope.Tenant, cfg.Tenant.ID)
	}
	headers := [][2]string{
		{"Content-Type", "application/json"},
		{"User-Agent", "erpsync/" + version},
		{signer.HeaderTenant, cfg.Tenant.ID},
		{signer.HeaderDeliveryID, envelope.DeliveryID},
		{signer.HeaderTimestamp, strconv.FormatInt(*ts, 10)},
		{signer.HeaderSignature, signer.Sign(cfg.Tenant.Key(), *ts, body)},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "printf '%%s' %s \\\n  | curl -sS -X POST %s \\\n", shellQuote(string(body)), shellQuote(cfg.Ingest.URL))
	for _, h := range headers {
		fmt.Fprintf(&b, "    -H %s \\\n", shellQuote(h[0]+": "+h[1]))
	}
	b.WriteString("    --data-binary @-\n")
	_, err = io.WriteString(c.stdout, b.String())
	return err
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Usage prints help.
func (c *SignCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync sign [--config FILE] [--site NAME] [--timestamp N] [--body-only] < body.json

Reads a JSON body on stdin, writes it in canonical form (RFC 8785) and prints a
curl command that POSTs it to ingest.url with the headers erpsync sends:
X-Tenant-Id, X-OrderWeave-Delivery-Id (from the body's delivery_id),
X-OrderWeave-Timestamp and X-OrderWeave-Signature = base64(HMAC-SHA256(secret,
"<timestamp>:<body>")). --body-only prints just the canonical body and needs
no settings.

Examples:
	echo '{"tenant":"acme","items":[],"delivery_id":"d-1"}' | erpsync sign --body-only
	erpsync sign --config /etc/erpsync/settings.toml < body.json | sh
`)
}
