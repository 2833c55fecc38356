package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

// ReceiveCommand runs the reference ingestion endpoint.
type ReceiveCommand struct{ stdio }

// tenantFlags collects repeated --tenant ID=SECRET flags.
type tenantFlags map[string][]byte

func (t tenantFlags) String() string { return fmt.Sprintf("%d tenants", len(t)) }

func (t tenantFlags) Set(v string) error {
	id, secret, ok := strings.Cut(v, "=")
	if !ok || id == "" || secret == "" {
		return fmt.Errorf("want ID=SECRET or ID=@FILE")
	}
	if strings.HasPrefix(secret, "@") {
		b, err := os.ReadFile(secret[1:])
		if err != nil {
			return fmt.Errorf("tenant %s: read secret: %w", id, err)
		}
		secret = string(b)
	}
	key, err := signer.DecodeSecret(secret)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", id, err)
	}
	t[id] = key
	return nil
}

// Run serves until ctx ends, printing each accepted item on stdout.
func (c *ReceiveCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("receive", c.stderr, c.Usage)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	tenants := tenantFlags{}
	fs.Var(tenants, "tenant", "ID=SECRET or ID=@FILE (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(tenants) == 0 {
		return usageErrorf("at least one --tenant ID=SECRET is required")
	}
	r := receiver.New(receiver.Options{
		Tenants: tenants,
		Out:     c.stdout,
		Logger:  slog.New(slog.NewTextHandler(c.stderr, nil)),
	})
	url, wait, err := receiver.Serve(ctx, *listen, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "receiving on %s (Ctrl-C stops)\n", url)
	return wait()
}

// Usage prints help.
func (c *ReceiveCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync receive [--listen ADDR] --tenant ID=SECRET [--tenant ID=@FILE …]

Runs a reference ingestion endpoint that verifies every request exactly as
PROTOCOL.md says (headers, tenant, 5-minute window, signature, canonical body,
duplicate delivery ids) and prints one line per accepted item. Rejections are
logged on stderr with the reason.

Example:
	erpsync receive --listen 127.0.0.1:8080 --tenant acme=@/etc/erpsync/secret
`)
}
