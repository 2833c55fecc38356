package main

import (
	"testing"

	"github.com/orderweave/erpsync/signer"
)

// BenchmarkQueueSerialise measures what queue.write spends serialising one
// changed item: its content hash and its entry. "reference" is the two
// encodings the queue used to make (refContentHash, refMakeEntry); "once" is
// the single encoding it makes now.
func BenchmarkQueueSerialise(b *testing.B) {
	fields := itemFields("SKU-000123", 2, 3, 3)
	const version = 1715000000123456
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := refContentHash(fields); err != nil {
				b.Fatal(err)
			}
			if _, err := refMakeEntry("SKU-000123", false, version, fields); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("once", func(b *testing.B) {
		b.ReportAllocs()
		var scratch []byte // reused across the items of a batch, as write does
		for b.Loop() {
			var c *signer.Object
			var err error
			if c, err = itemContent(fields); err != nil {
				b.Fatal(err)
			}
			_, scratch = hashContent(c, scratch)
			if _, err := makeEntry("SKU-000123", false, version, fields, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
