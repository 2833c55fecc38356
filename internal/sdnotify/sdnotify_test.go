package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen makes a real datagram socket like systemd's and points
// $NOTIFY_SOCKET at it.
func listen(t *testing.T, abstract bool) *net.UnixConn {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify.sock")
	env := name
	if abstract {
		env = "@erpsync-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		name = "\x00" + env[1:]
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", env)
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestOpsNotify(t *testing.T) {
	tests := []struct {
		name     string
		abstract bool
		send     func() (bool, error)
		want     string // prefix of the datagram
	}{
		{"ready", false, Ready, "READY=1"},
		{"ready, abstract socket", true, Ready, "READY=1"},
		{"reloading carries the monotonic clock", false, Reloading, "RELOADING=1\nMONOTONIC_USEC="},
		{"stopping", false, Stopping, "STOPPING=1"},
		{"watchdog", false, Watchdog, "WATCHDOG=1"},
		{"status", false, func() (bool, error) { return Status("delivering, 3 pending") }, "STATUS=delivering, 3 pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := listen(t, tt.abstract)
			sent, err := tt.send()
			if err != nil || !sent {
				t.Fatalf("sent %v, err %v", sent, err)
			}
			got := receive(t, conn)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("datagram %q, want prefix %q", got, tt.want)
			}
			if usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC="); ok {
				if n, err := strconv.ParseInt(usec, 10, 64); err != nil || n <= 0 {
					t.Errorf("MONOTONIC_USEC=%q is not a positive number", usec)
				}
			}
		})
	}
}

func TestOpsNotifyWithoutSystemd(t *testing.T) {
	tests := []struct {
		name, env string
		wantErr   bool
	}{
		{"no socket: nothing to do", "", false},
		{"relative path is refused", "notify.sock", true},
		{"socket that does not exist", filepath.Join(t.TempDir(), "gone.sock"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tt.env)
			sent, err := Ready()
			if sent {
				t.Error("reported sent")
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("err %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestOpsWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", me, 30 * time.Second, true},
		{"30000000", "1", 0, false}, // meant for another process
		{"0", "", 0, false},
		{"x", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.usec+"/"+tt.pid, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := WatchdogInterval()
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestRunWatchdog: keep-alives arrive about every half interval while
// healthy, and stop while unhealthy.
func TestOpsRunWatchdog(t *testing.T) {
	conn := listen(t, false)
	t.Setenv("WATCHDOG_USEC", "100000") // 100ms: a keep-alive every 50ms
	t.Setenv("WATCHDOG_PID", "")
	var healthy = make(chan bool, 1)
	healthy <- true
	check := func() error {
		h := <-healthy
		healthy <- h
		if !h {
			return context.DeadlineExceeded
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWatchdog(ctx, check) }()
	for range 3 {
		if got := receive(t, conn); got != "WATCHDOG=1" {
			t.Fatalf("datagram %q", got)
		}
	}
	<-healthy
	healthy <- false
	// Drain what may have been sent before the switch, then expect silence.
	time.Sleep(60 * time.Millisecond)
	conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	buf := make([]byte, 64)
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := conn.Read(buf); err == nil {
		t.Errorf("keep-alive %q sent while unhealthy", buf[:n])
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunWatchdog: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog did not return after its context ended")
	}
}
