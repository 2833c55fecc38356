package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"

	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestFaultResyncReadBeforeDaemonQueues pins down, without random moments,
// the race TestFaultSIGKILLResync's second case meets by chance: `erpsync
// resync` reads an item from the database; the item changes, and the daemon
// queues and delivers its newer state; then the resync goes on to queue what
// it read. The resync's state must not take the newer one's place at the
// receiver (older_after_newer 0, lost 0): the resync may skip the item or
// queue its current state, never the one it read.
//
// The resync reaches MariaDB through toxiproxy with a gate toxic that lets
// its read of tabItem through and then holds everything it sends until the
// test opens the gate, once the receiver holds the newer state.
func TestFaultResyncReadBeforeDaemonQueues(t *testing.T) {
	const code = "ITEM-00042"
	erpsyncBinary(t) // built now: the resync starts right after the initial sync, whether or not another test built it
	f := newFaultRun(t, faultOptions{items: 50})
	f.Start()
	f.waitLog("initial sync done", 30*time.Second)
	f.drained()

	p := startDBProxy(t, f.dbAddr())
	gateDir := t.TempDir()
	seen, open := filepath.Join(gateDir, "seen"), filepath.Join(gateDir, "open")
	// The build's read of tabItem (the table qualified by its database).
	p.addToxic(t, "gate", gateToxicType, "upstream", map[string]any{"match": "`tabItem` WHERE name IN (", "seen": seen, "open": open})
	cfg, err := os.ReadFile(f.CfgPath)
	must(t, err)
	resyncCfg := filepath.Join(f.Dir, "resync.toml")
	must(t, os.WriteFile(resyncCfg, []byte(strings.Replace(string(cfg), "@tcp("+f.dbAddr()+")/", "@tcp("+p.addr+")/", 1)), 0o600))

	fig := f.measure(func() int {
		f.runResync(t, "resync --item", func(_ *exec.Cmd, exited <-chan struct{}) {
			deadline := time.Now().Add(30 * time.Second)
			for !exists(seen) {
				select {
				case <-exited:
					t.Fatal("the resync ended before it read tabItem through the gate")
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the resync did not read tabItem within 30s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // MariaDB has answered the read
			f.bulkUpdate(1, []string{code}, 1, 0)
			want := f.dbState().entries[code]
			deadline = time.Now().Add(30 * time.Second)
			for {
				e := f.Rcv.Items(sitetest.Tenant)[code]
				if strings.Replace(want, versionMark, `"version":`+fmt.Sprint(e.Version), 1) == string(e.Raw) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the daemon did not deliver the item's newer state within 30s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case <-exited:
				t.Fatal("the resync ended while the gate held it")
			default:
			}
			must(t, os.WriteFile(open, nil, 0o600))
		}, "--config", resyncCfg, "--item", code)
		f.drained() // what the resync queued, if anything, is delivered
		return 1
	}, nil, func() {})
	f.report("resync read before the daemon queued", fig)
	f.drained()
	f.Stop()
}

// gateToxicType is the toxiproxy toxic type of gateToxic.
const gateToxicType = "erpsync_gate"

// Toxics are registered by type name, as toxiproxy's own are: in init.
func init() { toxics.Register(gateToxicType, new(gateToxic)) }

// gateToxic passes data through until a chunk containing Match has passed
// on any connection of the proxy; it then creates the file Seen and holds
// every later chunk, on every connection, until the file Open exists. The
// files are how the test and the toxic, which toxiproxy makes from JSON,
// talk.
type gateToxic struct {
	Match string `json:"match"`
	Seen  string `json:"seen"`
	Open  string `json:"open"`
}

// Pipe implements toxics.Toxic.
func (g *gateToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if !g.pass(stub, c) {
				return
			}
		}
	}
}

// pass sends c on, holding it while the gate is closed; false when the
// toxic was interrupted (c was sent on then too).
func (g *gateToxic) pass(stub *toxics.ToxicStub, c *stream.StreamChunk) bool {
	for exists(g.Seen) && !exists(g.Open) {
		select {
		case <-stub.Interrupt:
			stub.WriteOutput(c, 5*time.Second) // never drop data: the toxic is being removed
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	stub.Output <- c
	if bytes.Contains(c.Data, []byte(g.Match)) && !exists(g.Seen) {
		os.WriteFile(g.Seen, nil, 0o600) // a failure shows as the test's wait for Seen timing out
	}
	return true
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
