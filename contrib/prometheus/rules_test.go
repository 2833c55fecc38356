package prometheus

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRules runs `promtool check rules` on the alerting rules and `promtool
// test rules` on their unit tests: when each alert fires, its labels, and the
// text that tells the operator what to run.
func TestRules(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is not installed: apt-get install prometheus (make test-deps installs it)")
	}
	for _, args := range [][]string{
		{"check", "rules", "erpsync.rules.yml"},
		{"test", "rules", "erpsync.rules.test.yml"},
	} {
		out, err := exec.Command("promtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
