package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the CPU time (user + system, all threads) a process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// machineCPU returns the CPU time all processes on the machine have used
// (user, nice, system, irq, softirq) and the time the hypervisor stole, from
// /proc/stat.
func machineCPU() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var v [9]int64
	for i := 1; i < 9; i++ {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	tick := time.Second / clockTicks
	return time.Duration(v[1]+v[2]+v[3]+v[6]+v[7]) * tick, time.Duration(v[8]) * tick
}

// ioStall returns the time some task was stalled on I/O, from the kernel's
// pressure stall information (/proc/pressure/io, "some" line; 0 without PSI).
func ioStall() time.Duration {
	b, err := os.ReadFile("/proc/pressure/io")
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "total="); ok {
			us, _ := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond // the first total is the "some" line's
		}
	}
	return 0
}

// procMem returns VmRSS and VmHWM (peak RSS) of a process, in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: unexpected %q", pid, k, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, nil
}

// daemonProc is one `erpsync run` subprocess.
type daemonProc struct {
	cmd     *exec.Cmd
	pid     int
	logPath string
	done    chan struct{}
	err     error
	peakRSS int64 // largest VmHWM seen, bytes (kept after exit)
}

// startDaemon runs `bin run --config cfgPath` with its log (stderr) in logPath.
// A non-empty profile is where the daemon writes its CPU profile.
func startDaemon(bin, cfgPath, logPath, profile string) (*daemonProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GODEBUG=", "ERPSYNC_CPUPROFILE="+profile) // no inherited debug settings
	// The daemon dies with the bench, and a Ctrl-C on the terminal reaches the
	// bench only, which then stops it cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &daemonProc{cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// mem samples VmRSS and VmHWM, keeping the peak.
func (p *daemonProc) mem() (rss, hwm int64) {
	rss, hwm, err := procMem(p.pid)
	if err != nil {
		return 0, p.peakRSS
	}
	p.peakRSS = max(p.peakRSS, hwm)
	return rss, hwm
}

func (p *daemonProc) cpu() time.Duration {
	d, _ := procCPU(p.pid)
	return d
}

// stop sends SIGTERM and waits (SIGKILL after 30s).
func (p *daemonProc) stop() error {
	if p.exited() {
		return p.exitErr()
	}
	p.mem()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("erpsync (pid %d) did not stop within 30s of SIGTERM; killed", p.pid)
	}
}

func (p *daemonProc) exitErr() error {
	if p.err == nil {
		return nil
	}
	return fmt.Errorf("erpsync exited: %v\n%s", p.err, p.tail(20))
}

// log returns the whole sync log so far.
func (p *daemonProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *daemonProc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitLog waits until the log holds substr.
func (p *daemonProc) waitLog(ctx context.Context, substr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if strings.Contains(p.log(), substr) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("erpsync exited before logging %q: %v\n%s", substr, p.err, p.tail(20))
		case <-ctx.Done():
			return fmt.Errorf("erpsync did not log %q within %v\n%s", substr, timeout, p.tail(20))
		case <-t.C:
		}
	}
}

// busyError says the daemon did not settle within the time allowed.
type busyError struct {
	after   time.Duration
	percent float64 // CPU of the last window, % of one core
}

func (e *busyError) Error() string {
	return fmt.Sprintf("erpsync still used %.0f%% of a core %v later", e.percent, e.after)
}

// waitIdle waits until the daemon has used less than 2% of a core for two
// consecutive half-second windows: its first polls after a start, which
// re-read the overlap window, and deliveries in flight are over. It returns a
// *busyError when that does not happen within timeout.
func (p *daemonProc) waitIdle(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	calm := 0
	for calm < 2 {
		c0, t0 := p.cpu(), time.Now()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return p.exitErr()
		case <-time.After(500 * time.Millisecond):
		}
		p.mem()
		share := float64(p.cpu()-c0) / float64(time.Since(t0))
		if share < 0.02 {
			calm++
		} else {
			calm = 0
		}
		if calm < 2 && time.Since(start) > timeout {
			return &busyError{after: time.Since(start).Round(time.Second), percent: 100 * share}
		}
	}
	return nil
}

// buildErpsync builds ./cmd/erpsync of the module the bench runs in.
func buildErpsync(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the erpsync module: run the bench from the repository (make bench), or pass --bin")
	}
	bin := filepath.Join(dir, "erpsync")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-X main.version=bench", "-o", bin, "./cmd/erpsync")
	cmd.Dir = filepath.Dir(mod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/erpsync: %v\n%s", err, b)
	}
	return bin, nil
}
