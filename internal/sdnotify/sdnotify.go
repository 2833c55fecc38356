// Package sdnotify tells systemd about the service's state over
// $NOTIFY_SOCKET (sd_notify(3)): READY=1 once started, RELOADING=1 while
// re-reading settings, STOPPING=1 on shutdown, and WATCHDOG=1 keep-alives.
//
// Outside systemd (no $NOTIFY_SOCKET) every call does nothing and reports
// false, so the daemon can call it unconditionally.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Notify sends state, a newline-separated list of VAR=value assignments, to
// the socket named by $NOTIFY_SOCKET (a path, or "@name" for an abstract
// socket). It returns false and no error when there is no socket.
func Notify(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	addr := &net.UnixAddr{Name: name, Net: "unixgram"}
	if name[0] == '@' {
		addr.Name = "\x00" + name[1:]
	} else if name[0] != '/' {
		return false, fmt.Errorf("sdnotify: $NOTIFY_SOCKET %q is neither an absolute path nor an abstract socket", name)
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return false, fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sdnotify: %w", err)
	}
	return true, nil
}

// Ready tells systemd that start-up finished (Type=notify), or that a reload
// finished.
func Ready() (bool, error) { return Notify("READY=1") }

// Reloading tells systemd that the service is reloading its settings. Call
// Ready when done. MONOTONIC_USEC is included, as Type=notify-reload needs.
func Reloading() (bool, error) {
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping tells systemd that the service is shutting down.
func Stopping() (bool, error) { return Notify("STOPPING=1") }

// Status sets the one-line status `systemctl status` shows.
func Status(text string) (bool, error) { return Notify("STATUS=" + text) }

// Watchdog sends one keep-alive.
func Watchdog() (bool, error) { return Notify("WATCHDOG=1") }

// WatchdogInterval returns how often systemd expects a keep-alive
// (WatchdogSec=, from $WATCHDOG_USEC), and false when the watchdog is off or
// meant for another process ($WATCHDOG_PID).
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}

// RunWatchdog sends a keep-alive every half watchdog interval until ctx ends,
// as long as healthy (nil: always) returns nil. When healthy returns an
// error, it skips the keep-alive, so that systemd restarts a service that
// stays unhealthy for a whole interval. It returns at once when the watchdog
// is off.
func RunWatchdog(ctx context.Context, healthy func() error) error {
	interval, ok := WatchdogInterval()
	if !ok {
		return nil
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	var errs []error
	for {
		if healthy == nil || healthy() == nil {
			if _, err := Watchdog(); err != nil && len(errs) < 1 {
				errs = append(errs, err) // keep going: the socket may come back
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(errs...)
		case <-t.C:
		}
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd uses.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
