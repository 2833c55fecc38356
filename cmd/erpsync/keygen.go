package main

import (
	"context"
	"fmt"

	"github.com/orderweave/erpsync/signer"
)

// KeygenCommand prints a new tenant secret.
type KeygenCommand struct{ stdio }

// Run prints 32 random bytes, base64.
func (c *KeygenCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("keygen", c.stderr, c.Usage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := signer.NewSecret()
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, s)
	return nil
}

// Usage prints help.
func (c *KeygenCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync keygen

Prints a new tenant secret: 32 random bytes, base64. Give the same secret to
the ingestion service and put it in tenant.secret_file (or tenant.secret).

Example:
	erpsync keygen > /etc/erpsync/secret && chmod 0640 /etc/erpsync/secret
`)
}
