package main

import (
	"context"
	"fmt"
)

// RunCommand runs the daemon.
type RunCommand struct{ stdio }

// Run reads the settings, then detects and delivers until ctx ends (SIGINT or
// SIGTERM). A bad setting stops start-up with the reason.
func (c *RunCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("run", c.stderr, c.Usage)
	configPath := fs.String("config", "", "settings file (default $ERPSYNC_CONFIG, else "+DefaultConfigPath+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := ReadConfig(ConfigPath(*configPath))
	if err != nil {
		return err
	}
	logger, closeLog, err := openLog(cfg.Log, c.stderr)
	if err != nil {
		return fmt.Errorf("settings %s: %w", cfg.Path, err)
	}
	defer closeLog.Close()
	d := &daemon{cfg: cfg, logger: logger}
	if err := d.Run(ctx); err != nil {
		logger.Error("erpsync stopped on an error", "err", err)
		return err
	}
	return nil
}

// Usage prints help.
func (c *RunCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync run [--config FILE]

Runs the daemon: sends every item once on first start, then follows changes
in the ERPNext database and delivers them to ingest.url. Stops cleanly on
SIGINT or SIGTERM. Logs go to log.file and to stderr (the journal under systemd).

Example:
	erpsync run --config /etc/erpsync/settings.toml
`)
}
