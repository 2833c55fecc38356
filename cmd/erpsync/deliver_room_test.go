package main

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
		then    func(d *dispatcher) // done while awaitRoom waits; nil: it must not wait
		blocked bool                // awaitRoom waits until then
		full    bool                // awaitRoom waits out the whole limit
	}{
		{name: "stopped dispatcher takes nothing", running: false, ready: full, limit: time.Hour},
		{name: "half full", running: true, ready: half, limit: time.Hour},
		{name: "full, delivery takes messages", running: true, ready: full, limit: time.Hour, blocked: true,
			then: func(d *dispatcher) { d.takeReady(readyMax / 2) }},
		{name: "full, delivery takes too few", running: true, ready: full, limit: 300 * time.Millisecond, blocked: true, full: true,
			then: func(d *dispatcher) { d.takeReady(readyMax/2 - 1) }},
		{name: "over half the bytes, delivery takes them", running: true, ready: big, limit: time.Hour, blocked: true,
			then: func(d *dispatcher) { d.takeReady(1) }},
		{name: "full, the lane closes", running: true, ready: full, limit: time.Hour, blocked: true,
			then: func(d *dispatcher) { d.running = false; d.freeRoom() }},
		{name: "full, nothing happens", running: true, ready: full, limit: 200 * time.Millisecond, full: true},
		{name: "full, ctx ended", running: true, ready: full, limit: time.Hour, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDispatcher(nil, nil, nil, "t", 4, time.Second)
			d.running, d.healthy = tt.running, true
			d.addReady(tt.ready)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			start := time.Now()
			done := make(chan struct{})
			go func() { d.awaitRoom(ctx, tt.limit); close(done) }()
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
