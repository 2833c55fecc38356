package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDemo runs the README's first command as a user does (the binary, with
// --for) and checks that every scripted change arrives verified and that
// nothing is left running.
func TestDemo(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	cmd := exec.Command(erpsyncBinary(t), "demo", "--for", "20s", "--items", "40")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("erpsync demo: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"initial sync: 40 items verified",
		"op=delete item=ITEM-00003",
		`name="Café <Deluxe> & Co"`,
		"no Standard Buying row",
		"DEMO-TSHIRT-RED-M is Colour=Red, Size=M, Standard Selling 1500 inherited from DEMO-TSHIRT",
		"All Warehouses - AC (is_group) with actual_qty 14",
		"available_qty 7",
		"op=delete item=DEMO-NEW",
		"op=upsert item=DEMO-CAFE",
		"DEMO-NEW deleted with reason renamed, renamed_to DEMO-CAFE",
		"stopped; MariaDB, receiver and daemon shut down",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "arrived verified"); n != 9 {
		t.Errorf("%d changes arrived verified, want 9:\n%s", n, text)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "accepted ") {
			t.Errorf("a receiver line without its prefix: %q", line)
		}
	}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil || len(procs) == 0 {
		t.Fatalf("cannot list processes: %v", err)
	}
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "erpsync-demo-") {
			t.Errorf("a process of the demo is still running: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

// TestGatedWriter: nothing is written before the gate opens, and every line
// gets the prefix once, however the writes split it.
func TestGatedWriter(t *testing.T) {
	var on atomic.Bool
	var b strings.Builder
	g := &gatedWriter{w: &b, on: &on, prefix: "> "}
	for _, w := range []struct {
		open bool
		in   string
	}{{false, "hidden\n"}, {true, "a\nb\n"}, {true, "c"}, {true, "\n"}} {
		on.Store(w.open)
		if n, err := g.Write([]byte(w.in)); n != len(w.in) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w.in, n, err)
		}
	}
	if got, want := b.String(), "> a\n> b\n> c\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}
