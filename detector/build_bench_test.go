package detector

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/signer"
)

// The fast paths of Build must write the very bytes of the general code they
// shortcut: these tests compare them on many values.

// slowDecimal is what appendDecimal wrote for a DECIMAL text before the fast
// path: signer.Decimal's value, as canonical JSON; "" for text that is no
// decimal.
func slowDecimal(s string) string {
	v, _, err := signer.Decimal(s)
	if err != nil {
		return ""
	}
	out, err := signer.AppendValue(nil, v)
	if err != nil {
		return ""
	}
	return string(out)
}

func TestAppendShortDecimalMatchesSigner(t *testing.T) {
	tests := []struct {
		in    string
		short bool // the fast path takes it
	}{
		{"0", true}, {"-0.000000000", true}, {"+0", true}, {"000.000", true}, {".0", true},
		{"19.990000000", true}, {"100.000000000", true}, {"-5.250000000", true}, {"+7.5", true}, {".5", true}, {"5.", true},
		{"0.000001000", true}, {"-0.000001", true}, {"0.000000100", false}, {"0.000000001", false}, {"-0.0000005", false},
		{"123456789012345", true}, {"1234567890123456", false}, {"12345678.1234567", true}, {"12345678.12345678", false},
		{"999999999999.999999999", false}, {"100000000000000000000", false}, {"0.123456789012345", true},
		{"0.000012345678901234", true}, {"0.0000123456789012345", true}, {"0.00001234567890123456", false}, {"00012.3400", true},
		{"", false}, {"-", false}, {".", false}, {"-.", false}, {"1e5", false}, {"1.2.3", false}, {" 1", false},
		{"1 ", false}, {"0x10", false}, {"--1", false}, {"+-1", false}, {"１", false}, {"NaN", false},
	}
	for _, tc := range tests {
		got, ok := appendShortDecimal([]byte("x"), tc.in)
		if ok != tc.short {
			t.Errorf("appendShortDecimal(%q) took it: %v, want %v", tc.in, ok, tc.short)
		}
		if !ok {
			if string(got) != "x" {
				t.Errorf("appendShortDecimal(%q) refused it but appended %q", tc.in, got[1:])
			}
			continue
		}
		if want := slowDecimal(tc.in); string(got[1:]) != want {
			t.Errorf("appendShortDecimal(%q) = %s, signer.Decimal writes %s", tc.in, got[1:], want)
		}
		if b, _ := appendShortDecimal(nil, []byte(tc.in)); string(b) != string(got[1:]) {
			t.Errorf("appendShortDecimal([]byte(%q)) = %s, from a string %s", tc.in, b, got[1:])
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		in := randomDecimal(r)
		got, ok := appendShortDecimal(nil, in)
		if ok && string(got) != slowDecimal(in) {
			t.Fatalf("appendShortDecimal(%q) = %s, signer.Decimal writes %s", in, got, slowDecimal(in))
		}
	}
}

// randomDecimal is DECIMAL-like text: a sign now and then, up to 18 digits on
// either side of the point, runs of zeros.
func randomDecimal(r *rand.Rand) string {
	var b strings.Builder
	switch r.IntN(8) {
	case 0:
		b.WriteByte('-')
	case 1:
		b.WriteByte('+')
	}
	digits := func(n int) {
		for range n {
			if r.IntN(3) == 0 {
				b.WriteByte('0')
			} else {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
	}
	digits(r.IntN(19))
	if r.IntN(4) > 0 {
		b.WriteByte('.')
		digits(r.IntN(19))
	}
	return b.String()
}

func FuzzAppendShortDecimal(f *testing.F) {
	for _, s := range []string{"0", "19.990000000", "0.000001", "123456789012345", "-0.5", "1e5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := appendShortDecimal(nil, in)
		if ok && string(got) != slowDecimal(in) {
			t.Fatalf("appendShortDecimal(%q) = %s, signer.Decimal writes %s", in, got, slowDecimal(in))
		}
	})
}

func BenchmarkAppendDecimal(b *testing.B) {
	in := make([]string, 1000)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range in {
		in[i] = fmt.Sprintf("%d.%09d", r.IntN(100000), r.IntN(1000000000))
	}
	b.Run("short", func(b *testing.B) {
		var buf []byte
		for i := 0; b.Loop(); i++ {
			buf, _ = appendShortDecimal(buf[:0], in[i%len(in)])
		}
	})
	b.Run("signer", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			slowDecimal(in[i%len(in)])
		}
	})
}

// atRank places rows by their rank whatever order they come in; a rank not
// come yet holds an entry of no item.
func TestAtRank(t *testing.T) {
	var rows []entryAt
	for _, r := range []struct{ rank, item, want int }{{3, 30, 2}, {1, 10, 0}, {5, 50, 4}, {2, 20, 1}} {
		got, err := atRank(&rows, r.rank, entryAt{item: r.item})
		if err != nil || got != r.want {
			t.Fatalf("atRank(rank %d) = %d, %v; want %d", r.rank, got, err, r.want)
		}
	}
	var items []int
	for _, e := range rows {
		items = append(items, e.item)
	}
	if want := []int{10, 20, 30, -1, 50}; !slices.Equal(items, want) {
		t.Errorf("rows hold items %v, want %v", items, want)
	}
	if _, err := atRank(&rows, 0, entryAt{}); err == nil {
		t.Error("atRank(rank 0) did not fail")
	}
}
