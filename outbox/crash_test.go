package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	helperEnv     = "OUTBOX_TEST_HELPER"
	helperPathEnv = "OUTBOX_TEST_HELPER_PATH"
)

// TestHelperProcess is not a test: the tests below run the test binary again
// with helperEnv set, and this function then acts as the child process.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for TestCrashSafety, TestReadOnlyFile and TestLockForDaemon")
	}
	path := os.Getenv(helperPathEnv)
	var err error
	switch mode {
	case "crash":
		err = crashWriter(path)
	case "readonly":
		err = readOnlyWriter(path)
	case "lock":
		err = lockHolder(path)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

const crashBodySize = 1024

func crashCode(seq int64) string { return fmt.Sprintf("I%02d", seq%13) }

func crashBody(seq int64) []byte {
	b := fmt.Appendf(nil, "seq=%d;", seq)
	return append(b, strings.Repeat("x", crashBodySize-len(b))...)
}

// crashWriter stores messages and the cursor that covers them, one Update at
// a time, until it is killed, and prints "committed N" after each Update that
// returned nil. It goes on from the stored cursor.
func crashWriter(path string) error {
	ctx := context.Background()
	o, err := Open(ctx, path)
	if err != nil {
		return err
	}
	cursors, err := o.Cursors(ctx)
	if err != nil {
		return err
	}
	var seq int64
	if c, ok := cursors["item"]; ok {
		if seq, err = strconv.ParseInt(c.Modified, 10, 64); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(2 * time.Minute) // never outlive a parent that died
	for time.Now().Before(deadline) {
		n := 1 + rand.Int64N(4)
		err := o.Update(ctx, func(tx *Tx) error {
			for s := seq + 1; s <= seq+n; s++ {
				m := NewMessage{DeliveryID: fmt.Sprintf("c-%d", s), Body: crashBody(s),
					Items: []MessageItem{{Code: crashCode(s), Version: s, Op: "upsert"}}}
				if _, err := tx.AddMessage(ctx, m, time.Now()); err != nil {
					return err
				}
				if err := tx.PutItemState(ctx, ItemState{Code: crashCode(s), Version: s, Hash: strconv.FormatInt(s, 10)}); err != nil {
					return err
				}
			}
			// Take a while, as a detector building items would, so that
			// many kills land inside a transaction.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond))))
			if err := tx.SetMeta(ctx, "last_seq", strconv.FormatInt(seq+n, 10)); err != nil {
				return err
			}
			return tx.SetCursor(ctx, Cursor{Source: "item", Modified: strconv.FormatInt(seq+n, 10), Name: crashCode(seq + n)})
		})
		if err != nil {
			return err
		}
		seq += n
		fmt.Printf("committed %d\n", seq)
	}
	return errors.New("not killed in time")
}

// TestCrashSafety kills a writer with SIGKILL at random points, several times
// over, and checks after each kill that the file is intact, that messages and
// cursor were stored together (never a cursor ahead of its messages, never a
// message without its cursor), and that every Update that returned nil was
// kept.
func TestCrashSafety(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	var reported int64 // highest seq the child said was committed
	const rounds = 10
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"=crash", helperPathEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let the child commit a random number of updates, then kill it at a
		// random moment (most of a cycle is spent inside the transaction or
		// its fsync).
		killAfter := reported + 20 + rand.Int64N(60)
		sc := bufio.NewScanner(stdout)
		killed := false
		for sc.Scan() {
			seq, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "committed "), 10, 64)
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			if seq <= reported {
				t.Fatalf("child committed %d after %d", seq, reported)
			}
			reported = seq
			if !killed && seq >= killAfter {
				time.Sleep(time.Duration(rand.Int64N(int64(5 * time.Millisecond))))
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child did not die of SIGKILL: %v\n%s", round, err, stderr.String())
		}
		stored := checkCrashFile(t, path, reported)
		t.Logf("round %d: child reported %d committed, file holds %d", round, reported, stored)
		reported = stored // the next child goes on from the stored cursor
	}
}

// checkCrashFile opens the file a killed crashWriter left and checks it; it
// returns the stored cursor.
func checkCrashFile(t *testing.T, path string, reported int64) int64 {
	t.Helper()
	ctx := context.Background()
	o, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after kill: %v", err)
	}
	defer o.Close()

	var check string
	if err := o.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	rows, err := o.r.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("foreign_key_check found violations")
	}
	rows.Close()

	cursors, err := o.Cursors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := strconv.ParseInt(cursors["item"].Modified, 10, 64)
	if err != nil {
		t.Fatalf("cursor %+v: %v", cursors["item"], err)
	}
	if cur < reported {
		t.Fatalf("cursor %d is behind %d, which Update reported committed: a committed change was lost", cur, reported)
	}
	if v, _, _ := o.Meta(ctx, "last_seq"); v != strconv.FormatInt(cur, 10) {
		t.Errorf("meta last_seq %q, cursor %d", v, cur)
	}

	msgs, err := o.List(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(msgs)) != cur {
		t.Fatalf("%d messages stored, cursor %d: messages and cursor were not stored together", len(msgs), cur)
	}
	maxVersion := map[string]int64{}
	for i, m := range msgs { // newest first
		seq := cur - int64(i)
		if m.DeliveryID != fmt.Sprintf("c-%d", seq) || m.State != Pending {
			t.Fatalf("message %d is %s (%s), want c-%d pending", i, m.DeliveryID, m.State, seq)
		}
		if len(m.Items) != 1 || m.Items[0] != (MessageItem{crashCode(seq), seq, "upsert"}) {
			t.Fatalf("message %s items %+v", m.DeliveryID, m.Items)
		}
		if seq > maxVersion[crashCode(seq)] {
			maxVersion[crashCode(seq)] = seq
		}
	}
	if len(msgs) > 0 {
		full, err := o.Get(ctx, msgs[0].ID)
		if err != nil || string(full.Body) != string(crashBody(cur)) {
			t.Errorf("last message body %.20q, %v", full.Body, err)
		}
	}
	for code, v := range maxVersion {
		if s, ok, err := o.ItemState(ctx, code); err != nil || !ok || s.Version != v {
			t.Errorf("item %s: %+v, %v, %v; want version %d", code, s, ok, err, v)
		}
	}
	return cur
}

// readOnlyWriter tries to write to an outbox it may only read, and prints
// what happened.
func readOnlyWriter(path string) error {
	ctx := context.Background()
	o, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer o.Close()
	err = o.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AddMessage(ctx, msg("d-2", 2, "A"), t0); err != nil {
			return err
		}
		return tx.SetCursor(ctx, Cursor{Source: "item", Modified: "m2"})
	})
	if err == nil || !strings.Contains(err.Error(), path) {
		return fmt.Errorf("update on a read-only file: %v", err)
	}
	fmt.Println("update failed:", err)
	if err := o.MarkDelivered(ctx, 1, 200, t0); err == nil {
		return errors.New("MarkDelivered on a read-only file succeeded")
	} else {
		fmt.Println("mark failed:", err)
	}
	s, err := o.Stats(ctx)
	if err != nil {
		return err
	}
	if s.Pending != 1 {
		return fmt.Errorf("stats %+v, want 1 pending", s)
	}
	fmt.Println("stats ok")
	return nil
}

// runAsNobody runs readOnlyWriter on path as uid 65534, to whom the file
// (chmod 0400) is read-only, as it is to a non-root owner.
func runAsNobody(t *testing.T, dir, path string) string {
	t.Helper()
	const nobody = 65534
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chown(p, nobody, nobody); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	// The test binary may sit in a directory nobody cannot enter.
	bin := filepath.Join(dir, "outbox.test")
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=readonly", helperPathEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("running as root, where chmod 0400 does not stop writes, and cannot switch to uid %d to test a read-only file: %v", nobody, err)
	}
	if err != nil {
		t.Fatalf("read-only child: %v\n%s", err, out)
	}
	return string(out)
}
