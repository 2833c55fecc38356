package binlog

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkRead: one Read of 10,000 single-row transactions in row format across 100 schemas (GTID, annotate,
// table map, rows and XID events each), from the page cache.
func BenchmarkRead(b *testing.B) {
	const schemas, transactions, writers = 100, 10000, 4
	srv, db := server(b)
	names := make([]string, schemas)
	for i := range names {
		names[i] = fmt.Sprintf("bench%02d", i)
	}
	createSchemas(b, db, names...)
	exec(b, db, "FLUSH BINARY LOGS")
	tail := openTail(b, binlogDir(srv))
	start := tail.pos

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < transactions; i += writers {
				if _, err := db.ExecContext(testCtx(b), fmt.Sprintf("INSERT INTO %s.t (v) VALUES ('item %d')", names[i%schemas], i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	if ch := read(b, tail); len(ch.Schemas) != schemas || ch.Unknown {
		b.Fatalf("Read found %d schemas (Unknown %v), want %d", len(ch.Schemas), ch.Unknown, schemas)
	}
	events := tail.events

	for b.Loop() {
		tail.pos = start
		if ch := read(b, tail); len(ch.Schemas) != schemas {
			b.Fatalf("Read found %d schemas, want %d", len(ch.Schemas), schemas)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*events), "ns/event")
	b.ReportMetric(float64(events), "events/read")
}
