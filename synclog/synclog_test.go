package synclog

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every line reaches the destination whole and in the order each writer
// wrote it, however the lines are grouped into writes.
func TestLineWriterKeepsEveryLineInOrder(t *testing.T) {
	tests := []struct {
		name             string
		writers, lines   int
		lineBytes        int
		closeBeforeCheck bool
	}{
		{"one line, no Close", 1, 1, 40, false},
		{"a burst, no Close", 1, 2000, 100, false},
		{"concurrent writers, no Close", 8, 500, 120, false},
		{"concurrent writers, Close", 8, 500, 120, true},
		{"beyond the pending limit", 4, 200, 4096, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := &lockedBuffer{}
			w := newLineWriter(dst)
			defer w.Close()
			var wg sync.WaitGroup
			for g := range tc.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range tc.lines {
						line := fmt.Sprintf("w=%d i=%06d ", g, i)
						line += strings.Repeat("x", max(tc.lineBytes-len(line)-1, 0)) + "\n"
						if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
							t.Errorf("Write = %d, %v", n, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			want := tc.writers * tc.lines
			if tc.closeBeforeCheck {
				w.Close()
			}
			// Without Close the lines go out on their own, at once; the
			// deadline only keeps a broken writer from hanging the test.
			var got []string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				out := dst.String()
				if strings.Count(out, "\n") >= want || time.Now().After(deadline) {
					got = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
					break
				}
			}
			if len(got) != want {
				t.Fatalf("%d lines arrived, want %d", len(got), want)
			}
			next := make([]int, tc.writers)
			for _, line := range got {
				var g, i int
				if _, err := fmt.Sscanf(line, "w=%d i=%d ", &g, &i); err != nil || len(line) != max(tc.lineBytes-1, len(line)) {
					t.Fatalf("mangled line %q", line)
				}
				if i != next[g] {
					t.Fatalf("writer %d: line %d came where %d was due", g, i, next[g])
				}
				next[g]++
			}
		})
	}
}

// After Close a line is written at once, by the caller.
func TestLineWriterAfterClose(t *testing.T) {
	dst := &lockedBuffer{}
	w := newLineWriter(dst)
	if _, err := w.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := dst.String(); got != "before\n" {
		t.Fatalf("after Close: %q", got)
	}
	if _, err := w.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if got := dst.String(); got != "before\nafter\n" {
		t.Errorf("a line after Close: %q", got)
	}
	w.Close() // twice is harmless
}

// The sync log groups lines: a burst of lines logged together takes far
// fewer writes than lines, and Close leaves none behind.
func TestSyncLogGroupsLines(t *testing.T) {
	dst := &lockedBuffer{}
	l, err := Open(Options{Level: "info", File: "-"}, dst)
	if err != nil {
		t.Fatal(err)
	}
	const lines = 5000
	for i := range lines {
		l.Info("HMAC accepted", "delivery_id", fmt.Sprintf("d-%d", i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Count(dst.String(), "msg=\"HMAC accepted\"")
	if got != lines {
		t.Fatalf("%d lines written, want %d", got, lines)
	}
	dst.mu.Lock()
	writes := dst.writes
	dst.mu.Unlock()
	if writes >= lines {
		t.Errorf("%d lines took %d writes: not grouped", lines, writes)
	}
	t.Logf("%d lines in %d writes", lines, writes)
}

// lockedBuffer collects what a lineWriter writes while the test reads it.
type lockedBuffer struct {
	mu     sync.Mutex
	b      strings.Builder
	writes int // calls of Write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
