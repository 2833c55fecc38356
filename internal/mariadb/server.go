// Package mariadb runs a throwaway MariaDB server for tests and the demo.
//
// Start initialises a data directory with mariadb-install-db and runs mariadbd bound to 127.0.0.1, with its
// socket, data, binary log and error log inside one directory. Stop leaves no process behind, and the server
// also dies with the Go process that started it (PR_SET_PDEATHSIG), so a crashed or killed test binary does
// not leave a mariadbd running.
package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ErrNotFound is returned (wrapped or as is) by Start when mariadbd or mariadb-install-db is not installed.
var ErrNotFound = errors.New("mariadbd not found: install Debian's mariadb-server (apt-get install mariadb-server) or run `make demo`/`make test`, which install it")

// serverDirs and installDirs are where the binaries are looked for after $PATH (Debian puts mariadbd in
// /usr/sbin, which is not on every user's PATH; some distributions use /usr/libexec).
func serverDirs() []string {
	return []string{"/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/mysql/bin"}
}

func installDirs() []string {
	return []string{"/usr/bin", "/usr/local/bin", "/usr/local/mysql/scripts", "/usr/local/mysql/bin"}
}

const (
	stopTimeout = 60 * time.Second // SIGTERM → SIGKILL
	maxSocket   = 107              // sun_path is 108 bytes including the NUL
)

// Options configures Start.
type Options struct {
	// Dir holds the data directory, socket, pid file, binary log and (when Log is nil) the error log.
	// When empty, Start creates a new temporary directory and Stop removes it. A Dir given by the caller is
	// never removed; if it already holds an initialised data directory, that data is reused.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Log receives the server's error log and mariadb-install-db's output. Nil means the file
	// mariadbd.log in Dir. Log is written from another goroutine while the server runs.
	Log io.Writer
	// Env is added to mariadbd's environment (for example LD_PRELOAD and FAKETIME, to move the server's
	// clock with libfaketime).
	Env []string
}

// Server is a running (or stopped) throwaway MariaDB server. Its methods are safe for concurrent use.
type Server struct {
	Dir    string // see Options.Dir
	Socket string // Unix socket path, inside Dir
	Port   int    // TCP port on 127.0.0.1

	mariadbd   string
	env        []string // Options.Env
	createdDir bool
	log        io.Writer // where the server log goes (a file in Dir or Options.Log)
	logFile    *os.File  // non-nil when Start opened the log file itself
	tail       *tailBuffer

	mu      sync.Mutex
	proc    *process // nil when no mariadbd is running
	stopped bool     // Stop was called
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // cmd.Wait's result, valid after done is closed
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }

// Start initialises the data directory when needed, starts mariadbd and waits until it accepts root
// connections over TCP, or ctx ends. On error nothing is left running and a directory Start created is
// removed.
func Start(ctx context.Context, opts Options) (*Server, error) {
	mariadbd, err := findBinary("mariadbd", serverDirs())
	if err != nil {
		return nil, err
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("mariadb: invalid port %d", opts.Port)
	}

	s := &Server{Port: opts.Port, mariadbd: mariadbd, env: opts.Env, tail: &tailBuffer{max: 8 << 10}}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "erpsync-mariadb-")
		if err != nil {
			return nil, fmt.Errorf("mariadb: %w", err)
		}
		s.Dir, s.createdDir = dir, true
	} else {
		dir, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("mariadb: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("mariadb: %w", err)
		}
		s.Dir = dir
	}
	s.Socket = filepath.Join(s.Dir, "mariadbd.sock")

	ok := false
	defer func() {
		if !ok {
			s.closeLog()
			if s.createdDir {
				os.RemoveAll(s.Dir)
			}
		}
	}()
	if len(s.Socket) > maxSocket {
		return nil, fmt.Errorf("mariadb: socket path %q is longer than %d bytes; use a shorter Dir", s.Socket, maxSocket)
	}
	for _, sub := range []string{"binlog", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("mariadb: %w", err)
		}
	}
	if opts.Log != nil {
		s.log = opts.Log
	} else {
		f, err := os.OpenFile(filepath.Join(s.Dir, "mariadbd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("mariadb: %w", err)
		}
		s.log, s.logFile = f, f
	}

	if err := s.installDB(ctx); err != nil {
		return nil, err
	}

	// A port picked here can be taken by someone else before mariadbd binds it; try a few.
	for attempt := 0; ; attempt++ {
		if opts.Port == 0 {
			p, err := freePort()
			if err != nil {
				return nil, fmt.Errorf("mariadb: picking a port: %w", err)
			}
			s.Port = p
		}
		err = s.startProcess(ctx)
		if err == nil {
			break
		}
		if opts.Port != 0 || attempt >= 4 || !errors.Is(err, errPortInUse) || ctx.Err() != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// RootDSN returns a go-sql-driver/mysql DSN for root (no password) over TCP to 127.0.0.1:Port, for database
// (may be empty), with utf8mb4 / utf8mb4_unicode_ci and parseTime off (DATETIME values arrive as text).
func (s *Server) RootDSN(database string) string {
	return dsn("root", "", s.Port, database)
}

func dsn(user, password string, port int, database string) string {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg.DBName = database
	cfg.ParseTime = false
	_ = cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_unicode_ci")) // cannot fail
	return cfg.FormatDSN()
}

// Stop shuts the server down (SIGTERM; SIGKILL if it has not exited within a minute), waits until the
// process is gone and removes Dir if Start created it. It is idempotent; after Stop, Restart fails.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stopProcess(syscall.SIGTERM)
	if !s.stopped {
		s.stopped = true
		s.closeLog()
		if s.createdDir {
			if rmErr := os.RemoveAll(s.Dir); rmErr != nil && err == nil {
				err = fmt.Errorf("mariadb: %w", rmErr)
			}
		}
	}
	return err
}

// Kill sends SIGKILL to the server and waits until the process is gone: a crash, for fault tests.
// The data directory stays; Restart brings the server back (running InnoDB crash recovery).
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopProcess(syscall.SIGKILL)
}

// Terminate stops the server cleanly (SIGTERM, as a service stop does) and
// waits until the process is gone. The data directory stays; Restart brings
// the server back.
func (s *Server) Terminate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopProcess(syscall.SIGTERM)
}

// Restart stops the server if it is running (cleanly) and starts it again on the same port with the same
// data, waiting until it accepts connections or ctx ends.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("mariadb: Restart after Stop")
	}
	if err := s.stopProcess(syscall.SIGTERM); err != nil {
		return err
	}
	return s.startProcess(ctx)
}

// Pid returns the process id of the running mariadbd, or 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

func (s *Server) closeLog() {
	if s.logFile != nil {
		s.logFile.Close()
		s.logFile = nil
	}
}

// installDB runs mariadb-install-db unless the data directory is already initialised.
func (s *Server) installDB(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.dataDir(), "mysql")); err == nil {
		return nil
	}
	install, err := findBinary("mariadb-install-db", installDirs())
	if err != nil {
		return err
	}
	os.RemoveAll(s.dataDir()) // a half-initialised leftover
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + s.dataDir(),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		// Passed on to the bootstrap mariadbd. Its own tmpdir: with the default (/tmp), concurrent
		// bootstraps were seen to fail ("Could not remove temporary table '/tmp/#sql-temptable-…'").
		"--tmpdir=" + filepath.Join(s.Dir, "tmp"),
		"--innodb-log-file-size=32M",
		"--innodb-buffer-pool-size=64M",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.CommandContext(ctx, install, args...)
	cmd.Dir = s.Dir
	out := io.MultiWriter(s.log, s.tail)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	// Kill the whole process group on cancel: the script runs mariadbd --bootstrap as its own child.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		os.RemoveAll(s.dataDir())
		if ctx.Err() != nil {
			return fmt.Errorf("mariadb: mariadb-install-db: %w", ctx.Err())
		}
		return fmt.Errorf("mariadb: mariadb-install-db failed: %v\n%s", err, s.tail.String())
	}
	return nil
}

var errPortInUse = errors.New("port in use")

func (s *Server) args() []string {
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + s.dataDir(),
		"--socket=" + s.Socket,
		"--pid-file=" + filepath.Join(s.Dir, "mariadbd.pid"),
		"--tmpdir=" + filepath.Join(s.Dir, "tmp"),
		"--port=" + strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--performance-schema=OFF",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=32M",
		"--innodb-flush-log-at-trx-commit=2", // survives a mariadbd crash (Kill), not an OS crash
		"--innodb-doublewrite=0",
		"--log-bin=" + filepath.Join(s.Dir, "binlog", "mariadb-bin"),
		"--server-id=1",
		"--binlog-format=ROW",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
		"--max-allowed-packet=64M",
		"--max-connections=500",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args
}

// startProcess starts mariadbd and waits for it to accept connections. Caller holds s.mu or owns s.
func (s *Server) startProcess(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mariadb: start: %w", err)
	}
	cmd := exec.Command(s.mariadbd, s.args()...)
	cmd.Dir = s.Dir
	if len(s.env) > 0 {
		cmd.Env = append(os.Environ(), s.env...)
	}
	cmd.Stdout = io.MultiWriter(s.log, s.tail)
	cmd.Stderr = cmd.Stdout // no --log-error: mariadbd logs to stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The server dies with us. Pdeathsig fires when the *thread* that forked exits; the fork is done
		// from a fresh goroutine (never locked to its thread), whose thread the Go runtime keeps for the
		// life of the process.
		Pdeathsig: syscall.SIGKILL,
		// Own process group: a Ctrl-C on the terminal goes to the test binary only, which then decides.
		Setpgid: true,
	}
	mark := s.tail.Len()
	startErr := make(chan error, 1)
	go func() { startErr <- cmd.Start() }()
	if err := <-startErr; err != nil {
		return fmt.Errorf("mariadb: starting %s: %w", s.mariadbd, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	if err := s.waitReady(ctx, p); err != nil {
		s.stopProcess(syscall.SIGKILL)
		log := s.tail.Since(mark)
		if errors.Is(err, errPortInUse) {
			return err
		}
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("mariadb: port %d: %w", s.Port, errPortInUse)
		}
		return fmt.Errorf("%w\nmariadbd log:\n%s", err, log)
	}
	return nil
}

// waitReady polls until root can log in over TCP, the process exits, or ctx ends. A server that answers
// but has another socket is some other server on our port: errPortInUse.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	cfg, err := mysql.ParseDSN(s.RootDSN(""))
	if err != nil {
		return err
	}
	cfg.Timeout = time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxIdleConns(0)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("mariadb: mariadbd exited during startup: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("mariadb: waiting for mariadbd on port %d: %w (last error: %v)", s.Port, ctx.Err(), lastErr)
		case <-tick.C:
		}
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		var socket string
		err := db.QueryRowContext(attempt, "SELECT @@socket").Scan(&socket)
		cancel()
		if err == nil {
			if socket != s.Socket {
				return fmt.Errorf("mariadb: another server (socket %s) answers on port %d: %w", socket, s.Port, errPortInUse)
			}
			return nil
		}
		lastErr = err
	}
}

// stopProcess signals the running mariadbd and waits until it has been reaped. SIGTERM escalates to
// SIGKILL after stopTimeout. Caller holds s.mu or owns s.
func (s *Server) stopProcess(sig syscall.Signal) error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	select {
	case <-p.done:
		return nil // already gone (crashed)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.cmd.Process.Kill()
	}
	if sig != syscall.SIGKILL {
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
			return nil
		case <-timer.C:
			p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("mariadb: mariadbd did not stop within %v of SIGTERM; killed", stopTimeout)
		}
	}
	<-p.done
	return nil
}

// findBinary looks for name in $PATH, then in dirs.
func findBinary(name string, dirs []string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	if name == "mariadbd" {
		return "", ErrNotFound
	}
	return "", fmt.Errorf("%s not found (%w)", name, ErrNotFound)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it, plus a running count for Since.
type tailBuffer struct {
	mu    sync.Mutex
	buf   []byte
	total int // bytes ever written
	max   int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	b.total += len(p)
	return len(p), nil
}

func (b *tailBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Since returns what was written after the running count was mark (as much as is still kept).
func (b *tailBuffer) Since(mark int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.total - mark
	if n > len(b.buf) {
		n = len(b.buf)
	}
	return string(bytes.TrimSpace(b.buf[len(b.buf)-n:]))
}

// Connect opens a pool for dsn and pings it.
func Connect(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
