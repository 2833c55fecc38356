package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the README's first command as a user does (the binary, with
// --for) and checks that every scripted change arrives verified and that
// nothing is left running.
func TestDemo(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	cmd := exec.Command(erpsyncBinary(t), "demo", "--for", "15s", "--items", "40")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("erpsync demo: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"initial sync: 40 items verified", "op=delete item=ITEM-00003", `name="Café <Deluxe> & Co"`, "stopped; MariaDB, receiver and daemon shut down"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "arrived verified"); n != 4 {
		t.Errorf("%d changes arrived verified, want 4:\n%s", n, text)
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
