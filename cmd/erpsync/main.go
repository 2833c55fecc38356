// Command erpsync keeps an e-commerce ingestion service in step with an
// ERPNext site: it detects changed items in the site's MariaDB, builds each
// whole item, signs it, stores it in a durable outbox and delivers it.
//
// Usage:
//
//	erpsync <command> [flags]
//
// Run `erpsync help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/orderweave/erpsync/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: `erpsync <name> …`.
type command interface {
	Run(ctx context.Context, args []string) error
	Usage()
}

// stdio is what every command reads and writes.
type stdio struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Main runs the command named by args[0] and returns the process exit code:
// 0 on success, 1 on failure, 2 on a usage error.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	io := stdio{stdin: stdin, stdout: stdout, stderr: stderr}
	cmds := map[string]command{
		"run":     &RunCommand{stdio: io},
		"sign":    &SignCommand{stdio: io},
		"verify":  &VerifyCommand{stdio: io},
		"keygen":  &KeygenCommand{stdio: io},
		"receive": &ReceiveCommand{stdio: io},
		"demo":    &DemoCommand{stdio: io},
		"version": &VersionCommand{stdio: io},
		"check":   &CheckCommand{stdio: io},
		"status":  &StatusCommand{stdio: io},
		"outbox":  &OutboxCommand{stdio: io},
		"resync":  &ResyncCommand{stdio: io},
	}
	if len(args) == 0 {
		// A usage error: the usage goes to stderr, so that nothing lands in
		// a pipe such as `erpsync … | sh`.
		usage(stderr)
		return 2
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...) // as `erpsync version`: what packagers and admins try first
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			c, ok := cmds[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "erpsync help: unknown command %q\n\n", args[1])
				usage(stderr)
				return 2
			}
			c.Usage()
			return 0
		}
		usage(stdout)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "erpsync: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := c.Run(ctx, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "erpsync %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "erpsync %s: %v\n", args[0], err)
		return 1
	}
}

// usageError marks a wrong invocation (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `erpsync keeps an ingestion service in step with an ERPNext site.

Usage:
	erpsync <command> [flags]

Commands:
	run       run the daemon (detect, queue, deliver) until SIGINT/SIGTERM
	demo      run the whole pipeline on a throwaway MariaDB with sample data
	sign      print the canonical body and signed headers of a request
	verify    check a signature the way the ingestion service does
	keygen    print a new tenant secret
	receive   run a reference ingestion endpoint that verifies every request
	check     check settings, database, ingestion, clock, outbox and log; say how to fix each problem
	status    what was detected and delivered, what is waiting, the last failure
	outbox    list, show, retry or purge outbox messages (dead letters)
	resync    queue the current state of items again (--item, --all, --since)
	version   print the version

Settings come from --config FILE, else $ERPSYNC_CONFIG, else `+config.DefaultPath+`.
Commands that work on one site take --site NAME when the file has several
[[sites]].
Run 'erpsync help <command>' for a command's flags and examples.
`)
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, out io.Writer, usage func()) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = usage
	return fs
}

// parseFlags parses args and rejects positional arguments. -h and --help
// print the command's usage (on stdout) and return flag.ErrHelp. A wrong flag
// is a usageError naming the flag and pointing at `erpsync help <command>`;
// the usage text itself is not printed then, because the commands print it on
// stdout, which may be a pipe (`erpsync sign … | sh`).
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard) // the error is returned and printed once, by Main
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return err
		}
		return usageErrorf("%v (run 'erpsync help %s' for the flags)", err, fs.Name())
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q (run 'erpsync help %s' for the flags)", fs.Arg(0), fs.Name())
	}
	return nil
}

// VersionCommand prints the version.
type VersionCommand struct{ stdio }

// Run prints the version.
func (c *VersionCommand) Run(ctx context.Context, args []string) error {
	fmt.Fprintf(c.stdout, "erpsync %s\n", version)
	return nil
}

// Usage prints help.
func (c *VersionCommand) Usage() { fmt.Fprintln(c.stdout, "usage: erpsync version") }

// configFlag defines the --config flag every command that reads the settings
// shares.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "settings file (default $ERPSYNC_CONFIG, else "+config.DefaultPath+")")
}

// siteFlag defines the --site flag of the commands that work on one site.
func siteFlag(fs *flag.FlagSet) *string {
	return fs.String("site", "", "the site, by its name in [[sites]] (needed when the settings file has several)")
}

// readSite reads the settings file and returns the site named name, or the
// only site when name is "".
func readSite(configPath, name string) (*config.Site, error) {
	cfg, err := config.Read(config.Path(configPath))
	if err != nil {
		return nil, err
	}
	if name != "" {
		if sc := cfg.Site(name); sc != nil {
			return sc, nil
		}
		if len(cfg.Sites) == 1 && cfg.Sites[0].Name == "" && name == cfg.Sites[0].Label() {
			return cfg.Sites[0], nil // the label logs and metrics give a file without [[sites]]
		}
		return nil, usageErrorf("--site %q: %s has no such site; its sites are %s", name, cfg.Path, siteNames(cfg))
	}
	if len(cfg.Sites) > 1 {
		return nil, usageErrorf("%s has %d sites: choose one with --site (%s)", cfg.Path, len(cfg.Sites), siteNames(cfg))
	}
	return cfg.Sites[0], nil
}

func siteNames(cfg *config.Config) string {
	names := make([]string, len(cfg.Sites))
	for i, sc := range cfg.Sites {
		names[i] = sc.Name
	}
	return strings.Join(names, ", ")
}
