package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// binPath is the erpsync binary built once for tests that run it as users do.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "erpsync-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "erpsync")
	build := exec.Command("go", "build", "-race", "-o", binPath, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build erpsync for the tests:", err)
		os.Exit(1)
	}
	code := mariadbtest.RunTests(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// runMain runs Main in-process and returns its exit code, stdout and stderr.
func runMain(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
