package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// binary is the erpsync binary, built with the race detector on first use by
// the tests that run it as users do; the others never wait for it.
type binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// bin is the test binary's one erpsync build. TestMain removes it at the end.
var bin binary

// erpsyncBinary returns the path of the built erpsync, building it once.
func erpsyncBinary(t testing.TB) string {
	t.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "erpsync-bin-")
		if bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "erpsync")
		build := exec.Command("go", "build", "-race", "-o", bin.path, ".")
		if out, err := build.CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("build erpsync for the tests: %v\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}

func TestMain(m *testing.M) {
	code := mariadbtest.RunTests(m)
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
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
