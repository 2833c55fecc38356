package detector

import (
	"hash/crc32"
	"hash/maphash"
	"sort"
)

// checksum summarises a set of rows: how many, and the sum and XOR of each
// row's rowChecksum. A full poll compares the checksum of the rows handed out
// inside the overlap window with the same aggregate over the table; when they
// agree, no row has committed late into the window.
type checksum struct {
	count int64
	sum   uint64 // wraps only beyond 2^32 rows
	xor   uint32
}

func (c *checksum) add(crc uint32) {
	c.count++
	c.sum += uint64(crc)
	c.xor ^= crc
}

func (c *checksum) remove(crc uint32) {
	c.count--
	c.sum -= uint64(crc)
	c.xor ^= crc
}

func (c *checksum) subtract(o checksum) {
	c.count -= o.count
	c.sum -= o.sum
	c.xor ^= o.xor
}

// rowChecksum is CRC32(CONCAT(name, modified)) as MariaDB computes it, where
// modified is the column's text as the server sends it.
func rowChecksum(buf []byte, name, modified string) ([]byte, uint32) {
	buf = append(append(buf[:0], name...), modified...)
	return buf, crc32.ChecksumIEEE(buf)
}

// modifiedSpans are where year, month, day, hour, minute, second and
// microsecond stand in a ModifiedLayout text.
func modifiedSpans() [7][2]int {
	return [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 26}}
}

// modifiedKey encodes a normalised `modified` text ("2006-01-02
// 15:04:05.000000") as an integer that orders as the text does. It accepts the
// zero date MariaDB allows and nothing that is not a DATETIME.
func modifiedKey(s string) (int64, bool) {
	if len(s) != len(ModifiedLayout) || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[19] != '.' {
		return 0, false
	}
	var f [7]int64
	for i, span := range modifiedSpans() {
		for _, c := range []byte(s[span[0]:span[1]]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			f[i] = f[i]*10 + int64(c-'0')
		}
	}
	if f[1] > 12 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 59 {
		return 0, false
	}
	return (((((f[0]*13+f[1])*32+f[2])*24+f[3])*60+f[4])*60+f[5])*1_000_000 + f[6], true
}

// modifiedText is the inverse of modifiedKey.
func modifiedText(k int64) string {
	var f [7]int64 // year, month, day, hour, minute, second, microsecond
	f[6], k = k%1_000_000, k/1_000_000
	for i, base := range [5]int64{60, 60, 24, 32, 13} {
		f[5-i], k = k%base, k/base
	}
	f[0] = k
	b := []byte(ModifiedLayout)
	for i, span := range modifiedSpans() {
		for p, v := span[1]-1, f[i]; p >= span[0]; p-- {
			b[p] = byte('0' + v%10)
			v /= 10
		}
	}
	return string(b)
}

// seenSet holds the rows of one source handed out inside the overlap window:
// for each row name the `modified` it was handed out with, grouped by that
// `modified` so that the rows leaving the window are dropped without visiting
// the others, with the checksum of each group and of all rows.
//
// A row is known by a 64-bit hash of its name, not the name: after a bulk
// change of 100k rows that is 3 MB instead of 7 MB (and the garbage
// collector's headroom on top). Two names of one source sharing a hash (odds
// about 10^-10 for 100k rows in the window) would count as one row; the
// reconciliation sweep would still send a change missed that way.
type seenSet struct {
	seed   maphash.Seed
	rows   map[uint64]seenRow
	groups map[int64]*seenGroup
	keys   []int64 // the keys of groups, ascending
	total  checksum
	gen    uint32 // the latest window re-read; rows it found carry it
	// missing: the source's table does not exist on this site (an app
	// that is not installed), checked once; the source reads nothing.
	missing bool
}

type seenRow struct {
	key int64  // modifiedKey of the modified it was handed out with
	crc uint32 // its rowChecksum
	gen uint32 // the window re-read that last found it; 0 = none
}

type seenGroup struct {
	sum checksum
	// name hashes of the rows handed out with this modified, in order; one
	// is stale when its row has since been handed out with another modified,
	// and may repeat.
	names []uint64
}

func newSeenSet() *seenSet {
	return &seenSet{seed: maphash.MakeSeed(), rows: map[uint64]seenRow{}, groups: map[int64]*seenGroup{}}
}

// id is the key of row name in s.rows.
func (s *seenSet) id(name string) uint64 { return maphash.String(s.seed, name) }

// len is how many rows the set holds.
func (s *seenSet) len() int { return len(s.rows) }

// has reports whether name was handed out with the modified of key.
func (s *seenSet) has(name string, key int64) bool {
	r, ok := s.rows[s.id(name)]
	return ok && r.key == key
}

// mark records that the window re-read gen found name with the modified of
// key, which it was handed out with.
func (s *seenSet) mark(name string, key int64, gen uint32) {
	id := s.id(name)
	if r, ok := s.rows[id]; ok && r.key == key {
		r.gen = gen
		s.rows[id] = r
	}
}

// add records that name was handed out with the modified of key.
func (s *seenSet) add(name string, key int64, crc uint32, gen uint32) {
	id := s.id(name)
	if r, ok := s.rows[id]; ok {
		if r.key == key {
			r.gen = gen
			s.rows[id] = r
			return
		}
		s.groups[r.key].sum.remove(r.crc)
		s.total.remove(r.crc)
	}
	g := s.groups[key]
	if g == nil {
		g = &seenGroup{}
		s.groups[key] = g
		i := len(s.keys)
		if i > 0 && s.keys[i-1] > key {
			i = sort.Search(len(s.keys), func(j int) bool { return s.keys[j] > key })
		}
		s.keys = append(s.keys, 0)
		copy(s.keys[i+1:], s.keys[i:])
		s.keys[i] = key
	}
	g.names = append(g.names, id)
	g.sum.add(crc)
	s.total.add(crc)
	s.rows[id] = seenRow{key: key, crc: crc, gen: gen}
}

// removeUnless drops the row id if it is in the group of key and gen did not
// find it.
func (s *seenSet) removeUnless(id uint64, key int64, gen uint32) {
	r, ok := s.rows[id]
	if !ok || r.key != key || r.gen == gen {
		return
	}
	delete(s.rows, id)
	s.groups[key].sum.remove(r.crc)
	s.total.remove(r.crc)
}

// prune drops every row handed out with a modified before lower. It visits
// only the groups it drops and their names.
func (s *seenSet) prune(lower int64) {
	n := sort.Search(len(s.keys), func(i int) bool { return s.keys[i] >= lower })
	if n == 0 {
		return
	}
	for _, k := range s.keys[:n] {
		g := s.groups[k]
		for _, id := range g.names {
			if r, ok := s.rows[id]; ok && r.key == k {
				delete(s.rows, id)
				s.total.remove(r.crc)
			}
		}
		delete(s.groups, k)
	}
	s.keys = s.keys[:copy(s.keys, s.keys[n:])]
}

// window is the checksum of the rows handed out with a modified in [lower,
// upper]. It visits only the groups outside that range.
func (s *seenSet) window(lower, upper int64) checksum {
	c := s.total
	for _, k := range s.keys {
		if k >= lower {
			break
		}
		c.subtract(s.groups[k].sum)
	}
	for i := len(s.keys) - 1; i >= 0 && s.keys[i] > upper; i-- {
		c.subtract(s.groups[s.keys[i]].sum)
	}
	return c
}

// groupsIn returns the keys of the non-empty groups in [lower, upper],
// ascending.
func (s *seenSet) groupsIn(lower, upper int64) []int64 {
	i := sort.Search(len(s.keys), func(j int) bool { return s.keys[j] >= lower })
	var out []int64
	for _, k := range s.keys[i:] {
		if k > upper {
			break
		}
		if s.groups[k].sum.count > 0 {
			out = append(out, k)
		}
	}
	return out
}

// sweep drops the rows handed out with a modified in [lower, upper] (upper <
// 0: no end) that the window re-read gen did not find (deleted, or moved
// elsewhere), and forgets the stale names of those groups.
func (s *seenSet) sweep(lower, upper int64, gen uint32) {
	i := sort.Search(len(s.keys), func(j int) bool { return s.keys[j] >= lower })
	for _, k := range s.keys[i:] {
		if upper >= 0 && k > upper {
			break
		}
		g := s.groups[k]
		live := g.names[:0]
		for _, id := range g.names {
			s.removeUnless(id, k, gen)
			if r, ok := s.rows[id]; ok && r.key == k {
				live = append(live, id)
			}
		}
		clear(g.names[len(live):])
		g.names = live
	}
}
