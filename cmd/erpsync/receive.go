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

// tenantFlags collects repeated --tenant ID=SECRET flags. Set only records
// the text: the flag package quotes a rejected value in its error, so the
// secrets are decoded by keys, after parsing, with errors that never hold them.
type tenantFlags []string

func (t *tenantFlags) String() string { return fmt.Sprintf("%d tenants", len(*t)) }

func (t *tenantFlags) Set(v string) error {
	*t = append(*t, v)
	return nil
}

// keys decodes every --tenant flag into tenant id -> key.
func (t tenantFlags) keys() (map[string][]byte, error) {
	keys := make(map[string][]byte, len(t))
	for _, v := range t {
		id, secret, ok := strings.Cut(v, "=")
		if !ok || id == "" || secret == "" {
			return nil, usageErrorf("--tenant wants ID=SECRET or ID=@FILE, such as acme=@/etc/erpsync/secret")
		}
		if _, dup := keys[id]; dup {
			return nil, usageErrorf("--tenant %s is given twice: give each tenant once", id)
		}
		if path, isFile := strings.CutPrefix(secret, "@"); isFile {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, usageErrorf("--tenant %s: read secret: %v", id, err)
			}
			secret = string(b)
		}
		key, err := signer.DecodeSecret(secret)
		if err != nil {
			return nil, usageErrorf("--tenant %s: %v", id, err)
		}
		keys[id] = key
	}
	return keys, nil
}

// Run serves until ctx ends, printing each accepted item on stdout.
func (c *ReceiveCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("receive", c.stderr, c.Usage)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	var tenants tenantFlags
	fs.Var(&tenants, "tenant", "ID=SECRET or ID=@FILE (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(tenants) == 0 {
		return usageErrorf("at least one --tenant ID=SECRET is required")
	}
	keys, err := tenants.keys()
	if err != nil {
		return err
	}
	r := receiver.New(receiver.Options{
		Tenants: keys,
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
logged on stderr with the reason; the client gets the same 401 for an unknown
tenant as for a wrong signature. The body is read only once the headers, the
timestamp and the tenant check out. Delivery ids are remembered, to answer a
duplicate, for as long as the replay window lets a request carrying one pass.

Example:
	erpsync receive --listen 127.0.0.1:8080 --tenant acme=@/etc/erpsync/secret
`)
}
