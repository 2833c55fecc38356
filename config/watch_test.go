package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatchSurvivesRenameAndRecreate: the settings watcher sees a write, an
// editor's save-by-rename, and a remove followed by a new file.
func TestWatchSurvivesRenameAndRecreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "settings.toml")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(path, []byte("a = 1\n"), 0o600))
	var reloads atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, path, 50*time.Millisecond, func() { reloads.Add(1) }) }()
	time.Sleep(100 * time.Millisecond)
	waitReloads := func(want int32, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for reloads.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d reloads, want %d", what, reloads.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	steps := []struct {
		what string
		do   func()
	}{
		{"write in place", func() { must(os.WriteFile(path, []byte("a = 2\n"), 0o600)) }},
		{"save by rename", func() {
			must(os.WriteFile(path+".swp", []byte("a = 3\n"), 0o600))
			must(os.Rename(path+".swp", path))
		}},
		{"remove and recreate", func() {
			must(os.Remove(path))
			time.Sleep(100 * time.Millisecond)
			must(os.WriteFile(path, []byte("a = 4\n"), 0o600))
		}},
		{"a burst of writes is one reload", func() {
			for i := 0; i < 10; i++ {
				must(os.WriteFile(path, []byte("a = 5"+strings.Repeat(" ", i)+"\n"), 0o600))
			}
		}},
	}
	for i, s := range steps {
		s.do()
		waitReloads(int32(i+1), s.what)
	}
	time.Sleep(200 * time.Millisecond)
	// The burst of ten writes must have been debounced (on a loaded machine
	// it may split in two, never in ten).
	got := reloads.Load()
	if got > int32(len(steps))+1 {
		t.Errorf("%d reloads for %d changes: the burst was not debounced", got, len(steps))
	}
	must(os.WriteFile(filepath.Join(dir, "other.toml"), []byte("x"), 0o600))
	time.Sleep(200 * time.Millisecond)
	if reloads.Load() != got {
		t.Errorf("a write to another file in the directory reloaded the settings")
	}
	cancel()
	must(<-done)
}
