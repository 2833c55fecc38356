package detector

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestModifiedKey(t *testing.T) {
	valid := []string{ // ascending
		"0000-00-00 00:00:00.000000",
		"1970-01-01 00:00:00.000000",
		"2024-02-29 23:59:59.999999",
		"2024-03-01 00:00:00.000000",
		"2024-03-01 00:00:00.000001",
		"2024-12-31 23:59:59.999999",
		"9999-12-31 23:59:59.999999",
	}
	for i, s := range valid {
		k, ok := modifiedKey(s)
		if !ok {
			t.Errorf("modifiedKey(%q) failed", s)
			continue
		}
		if back := modifiedText(k); back != s {
			t.Errorf("modifiedText(modifiedKey(%q)) = %q", s, back)
		}
		if i > 0 {
			if prev, _ := modifiedKey(valid[i-1]); prev >= k {
				t.Errorf("modifiedKey(%q) = %d, not above modifiedKey(%q) = %d", s, k, valid[i-1], prev)
			}
		}
	}
	for _, s := range []string{
		"", "2024-03-01 00:00:00", "2024-03-01 00:00:00.00000", "2024-13-01 00:00:00.000000",
		"2024-03-01 24:00:00.000000", "2024-03-01 00:60:00.000000", "2024-03-01T00:00:00.000000", "2024-03-0a 00:00:00.000000",
	} {
		if k, ok := modifiedKey(s); ok {
			t.Errorf("modifiedKey(%q) = %d, want failure", s, k)
		}
	}
}

// seenModel is the obvious implementation seenSet must agree with.
type seenModel map[string]seenRow

func (m seenModel) window(lower, upper int64) checksum {
	var c checksum
	for _, r := range m {
		if r.key >= lower && r.key <= upper {
			c.add(r.crc)
		}
	}
	return c
}

// A seenSet driven through random adds, moves, prunes and sweeps agrees with
// a plain map on which rows it holds and on the checksum of every window.
func TestSeenSetAgreesWithModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			s, m := newSeenSet(), seenModel{}
			var lower int64
			key := func() int64 { return lower + r.Int64N(50) }
			for step := range 2000 {
				switch op := r.IntN(20); {
				case op < 14: // hand out a row, new or moved
					name := fmt.Sprintf("row-%d", r.IntN(300))
					k := key()
					_, crc := rowChecksum(nil, name, modifiedText(k))
					s.add(name, k, crc, 0)
					m[name] = seenRow{key: k, crc: crc}
				case op < 16: // the window moves on
					lower += r.Int64N(5)
					s.prune(lower)
					for name, row := range m {
						if row.key < lower {
							delete(m, name)
						}
					}
				default: // a re-read of some groups finds only some of their rows
					from := key()
					to := from + r.Int64N(10)
					s.gen++
					for name, row := range m {
						if row.key < from || row.key > to {
							continue
						}
						if r.IntN(3) == 0 {
							delete(m, name)
						} else {
							s.mark(name, row.key, s.gen)
						}
					}
					s.sweep(from, to, s.gen)
				}
				if s.len() != len(m) {
					t.Fatalf("step %d: set holds %d rows, model %d", step, s.len(), len(m))
				}
				for name, row := range m {
					if !s.has(name, row.key) {
						t.Fatalf("step %d: set lost %s at %d", step, name, row.key)
					}
				}
				lo := key()
				hi := lo + r.Int64N(30)
				if got, want := s.window(lo, hi), m.window(lo, hi); got != want {
					t.Fatalf("step %d: window [%d, %d] = %+v, want %+v", step, lo, hi, got, want)
				}
				for _, k := range s.groupsIn(lower, lower+100) {
					if s.groups[k].sum != m.window(k, k) {
						t.Fatalf("step %d: group %d = %+v, want %+v", step, k, s.groups[k].sum, m.window(k, k))
					}
				}
				if !sort.SliceIsSorted(s.keys, func(i, j int) bool { return s.keys[i] < s.keys[j] }) {
					t.Fatalf("step %d: keys out of order: %v", step, s.keys)
				}
			}
		})
	}
}
