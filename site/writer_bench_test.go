package site

import "testing"

// BenchmarkWriterSerialise measures what the writer spends serialising one
// changed item: its content hash and its entry. "reference" is the two
// encodings the queue used to make (refContentHash, refMakeEntry); "once" is
// what it does now with the content the detector encoded (not counted here:
// BenchmarkBuild in package detector counts it).
func BenchmarkWriterSerialise(b *testing.B) {
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
		c, err := itemContent(fields)
		if err != nil {
			b.Fatal(err)
		}
		var scratch []byte // reused across the items of a batch, as write does
		for b.Loop() {
			_, scratch = hashContent(c, scratch)
			if _, err := makeEntry("SKU-000123", false, version, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
