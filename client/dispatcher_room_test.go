package client

import (
	"context"
	"testing"
	"time"

	"github.com/orderweave/erpsync/outbox"
)

// TestAwaitRoom checks when the queue's wait for room in the delivery lane
// ends: at once while the lane is at most half full or closed, otherwise
// when delivery takes messages out of it, the lane closes, ctx ends or the
// limit passes.
func TestAwaitRoom(t *testing.T) {
	full := make([]outbox.Message, readyMax)
	half := make([]outbox.Message, readyMax/2)
	big := []outbox.Message{{Body: make([]byte, readyMaxBytes/2+1)}}
	tests := []struct {
		name    string
		running bool
		ready   []outbox.Message
		limit   time.Duration
		cancel  bool                // ctx ended before the wait
		then    func(d *Dispatcher) // done while awaitRoom waits; nil: it must not wait
		blocked bool                // awaitRoom waits until then
		full    bool                // awaitRoom waits out the whole limit
	}{
		{name: "stopped dispatcher takes nothing", running: false, ready: full, limit: time.Hour},
		{name: "half full", running: true, ready: half, limit: time.Hour},
		{name: "full, delivery takes messages", running: true, ready: full, limit: time.Hour, blocked: true,
			then: func(d *Dispatcher) { d.takeReady(readyMax / 2) }},
		{name: "full, delivery takes too few", running: true, ready: full, limit: 300 * time.Millisecond, blocked: true, full: true,
			then: func(d *Dispatcher) { d.takeReady(readyMax/2 - 1) }},
		{name: "over half the bytes, delivery takes them", running: true, ready: big, limit: time.Hour, blocked: true,
			then: func(d *Dispatcher) { d.takeReady(1) }},
		{name: "full, the lane closes", running: true, ready: full, limit: time.Hour, blocked: true,
			then: func(d *Dispatcher) { d.running = false; d.freeRoom() }},
		{name: "full, nothing happens", running: true, ready: full, limit: 200 * time.Millisecond, full: true},
		{name: "full, ctx ended", running: true, ready: full, limit: time.Hour, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDispatcher(nil, nil, DispatcherConfig{Tenant: "t", Concurrency: 4, MaxWait: time.Second})
			d.running, d.healthy = tt.running, true
			d.addReady(tt.ready)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			start := time.Now()
			done := make(chan struct{})
			go func() { d.AwaitRoom(ctx, tt.limit); close(done) }()
			if tt.blocked {
				select {
				case <-done:
					t.Fatal("awaitRoom returned while the lane was full")
				case <-time.After(50 * time.Millisecond):
				}
			}
			if tt.then != nil {
				d.mu.Lock()
				tt.then(d)
				d.mu.Unlock()
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("awaitRoom did not return")
			}
			if took := time.Since(start); tt.full && took < tt.limit {
				t.Errorf("awaitRoom returned after %s, before its limit %s, with the lane over half full", took, tt.limit)
			}
		})
	}
}

// TestNextReady checks when a request slot that came free takes the next
// waiting message itself: only while delivery runs freely.
func TestNextReady(t *testing.T) {
	tests := []struct {
		name     string
		change   func(d *Dispatcher)
		cancel   bool
		wantTake bool
	}{
		{name: "endpoint accepts, slot free", wantTake: true},
		{name: "last request failed", change: func(d *Dispatcher) { d.healthy = false }},
		{name: "delivery paused", change: func(d *Dispatcher) { d.pausedUntil = time.Now().Add(time.Hour) }},
		{name: "probing after 401", change: func(d *Dispatcher) { d.fault = endpointFault{probes: 1, outcome: Unauthorized} }},
		{name: "probing after a wrong ingest.url", change: func(d *Dispatcher) { d.fault = endpointFault{probes: 1, outcome: Misdirected} }},
		{name: "endpoint gone", change: func(d *Dispatcher) { d.gone = true }},
		{name: "slots all busy", change: func(d *Dispatcher) {
			for i := range d.concurrency {
				d.inflight[int64(100+i)] = true
			}
		}},
		{name: "nothing waiting", change: func(d *Dispatcher) { d.takeReady(len(d.ready)) }},
		{name: "shutting down", cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDispatcher(nil, nil, DispatcherConfig{Tenant: "t", Concurrency: 2, MaxWait: time.Second})
			d.running, d.healthy = true, true
			d.addReady([]outbox.Message{{ID: 1, Body: []byte("a")}, {ID: 2, Body: []byte("bb")}})
			if tt.change != nil {
				tt.change(d)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			waiting, inflight := len(d.ready), len(d.inflight)
			d.mu.Lock()
			m, ok := d.nextReady(ctx)
			d.mu.Unlock()
			if ok != tt.wantTake {
				t.Fatalf("nextReady took a message: %v, want %v", ok, tt.wantTake)
			}
			if !ok {
				if len(d.ready) != waiting || len(d.inflight) != inflight {
					t.Errorf("nothing taken, yet waiting %d -> %d, in flight %d -> %d", waiting, len(d.ready), inflight, len(d.inflight))
				}
				return
			}
			if m.ID != 1 || !d.inflight[1] || len(d.ready) != 1 || d.ready[0].ID != 2 || d.readyBytes != 2 {
				t.Errorf("took %d (in flight: %v); left %d waiting, %d bytes; want message 1 in flight, message 2 waiting with 2 bytes",
					m.ID, d.inflight[1], len(d.ready), d.readyBytes)
			}
		})
	}
}
