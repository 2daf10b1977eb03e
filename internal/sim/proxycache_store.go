package sim

// The proxy cache model's store: entries, the LRU lists, the count-min
// sketch and W-TinyLFU admission.

// pentry is one stored answer.
type pentry struct {
	key        int32
	expires    int64
	warmed     bool
	seg        uint8 // segWindow, segProbation, segProtected (LRU: segProbation)
	prev, next *pentry
}

// TinyLFU segments.
const (
	segWindow uint8 = iota
	segProbation
	segProtected
)

// plist is an intrusive LRU list: head most recent.
type plist struct {
	head, tail *pentry
	n          int
}

func (l *plist) pushFront(e *pentry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
	l.n++
}

func (l *plist) remove(e *pentry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
	l.n--
}

func (l *plist) moveFront(e *pentry) {
	if l.head == e {
		return
	}
	l.remove(e)
	l.pushFront(e)
}

// sketch is a count-min sketch of 4-bit counters (4 rows), halved every
// sample increments so that old popularity fades (TinyLFU's reset).
type sketch struct {
	rows   [4][]uint8
	mask   uint64
	adds   int
	sample int
}

func newSketch(capacity int) *sketch {
	w := 16
	for w < 4*capacity {
		w <<= 1
	}
	sk := &sketch{mask: uint64(w - 1), sample: 10 * max(capacity, 1)}
	for i := range sk.rows {
		sk.rows[i] = make([]uint8, w)
	}
	return sk
}

func (sk *sketch) idx(key int32, row int) uint64 {
	return splitmix(uint64(key)*4+uint64(row)+0x9e37) & sk.mask
}

func (sk *sketch) add(key int32, n int) {
	for ; n > 0; n-- {
		for r := range sk.rows {
			if i := sk.idx(key, r); sk.rows[r][i] < 15 {
				sk.rows[r][i]++
			}
		}
		if sk.adds++; sk.adds >= sk.sample {
			sk.adds /= 2
			for r := range sk.rows {
				for i := range sk.rows[r] {
					sk.rows[r][i] >>= 1
				}
			}
		}
	}
}

func (sk *sketch) estimate(key int32) uint8 {
	m := uint8(15)
	for r := range sk.rows {
		m = min(m, sk.rows[r][sk.idx(key, r)])
	}
	return m
}

// store is one proxy's store of one service's pages: LRU, or W-TinyLFU's
// layout (Einziger et al. 2017, §4; Caffeine's and otter's): a window LRU
// of 1% of the entries that every new entry enters, and a main segmented
// LRU (probation, then protected once hit again, 80% of the main) that a
// window victim enters only if the sketch has seen it more often than
// the probation victim it would replace.
type store struct {
	cap     int
	lru     bool
	entries map[int32]*pentry
	window  plist
	prob    plist // LRU: the only list
	prot    plist
	wcap    int
	pcap    int // protected's bound
	sk      *sketch
	evicted int64
	// warmBoost is ProxyCache.WarmBoost.
	warmBoost int
}

func newStore(capacity int, policy string) *store {
	st := &store{cap: max(capacity, 1), lru: policy == evictLRU, entries: map[int32]*pentry{}, warmBoost: 15}
	if !st.lru {
		st.wcap = max(1, st.cap/100)
		st.pcap = (st.cap - st.wcap) * 8 / 10
		// Four counters per entry up to a million entries: 16 MiB of
		// sketch at most, whatever the budget (a larger one only adds
		// collisions among the rarest keys).
		st.sk = newSketch(min(st.cap, 1<<20))
	}
	return st
}

// get returns the fresh entry of key at now (nil when absent or
// expired), recording the access.
func (st *store) get(key int32, now int64) *pentry {
	if st.sk != nil {
		st.sk.add(key, 1)
	}
	e := st.entries[key]
	if e == nil {
		return nil
	}
	st.touch(e)
	if now >= e.expires {
		return nil
	}
	return e
}

// fresh reports whether key is stored and fresh, without counting an
// access (a warm fetch skipping it is not a request).
func (st *store) fresh(key int32, now int64) bool {
	e := st.entries[key]
	return e != nil && now < e.expires
}

// touch records a use of a stored entry: to the front of its list; a
// probation entry used again is promoted to protected, whose overflow
// goes back to probation.
func (st *store) touch(e *pentry) {
	switch {
	case st.lru:
		st.prob.moveFront(e)
	case e.seg == segWindow:
		st.window.moveFront(e)
	case e.seg == segProtected:
		st.prot.moveFront(e)
	default:
		st.prob.remove(e)
		e.seg = segProtected
		st.prot.pushFront(e)
		for st.prot.n > st.pcap {
			d := st.prot.tail
			st.prot.remove(d)
			d.seg = segProbation
			st.prob.pushFront(d)
		}
	}
}

// put stores key until expires. As in otter, a new entry's write counts
// once in the sketch; a warmed one twice more (internal/cache gives
// warmed responses a head start so that admission does not turn them
// away before their first real hit).
func (st *store) put(key int32, expires int64, warmed bool) {
	if e := st.entries[key]; e != nil {
		e.expires, e.warmed = expires, warmed
		st.touch(e)
		return
	}
	e := &pentry{key: key, expires: expires, warmed: warmed, seg: segProbation}
	st.entries[key] = e
	if st.lru {
		st.prob.pushFront(e)
		for st.prob.n > st.cap {
			st.drop(st.prob.tail, &st.prob)
		}
		return
	}
	// otter counts the write of a new entry in its sketch (policy.add),
	// and internal/cache raises a warmed one's count until it is admitted.
	st.sk.add(key, 1)
	if warmed {
		st.sk.add(key, st.warmBoost)
	}
	e.seg = segWindow
	st.window.pushFront(e)
	for st.window.n > st.wcap {
		cand := st.window.tail
		st.window.remove(cand)
		cand.seg = segProbation
		if st.prob.n+st.prot.n < st.cap-st.wcap {
			st.prob.pushFront(cand)
			continue
		}
		vl := &st.prob
		if vl.n == 0 {
			vl = &st.prot
		}
		victim := vl.tail
		if victim != nil && st.sk.estimate(cand.key) > st.sk.estimate(victim.key) {
			st.drop(victim, vl)
			st.prob.pushFront(cand)
		} else {
			delete(st.entries, cand.key)
			st.evicted++
		}
	}
}

func (st *store) drop(e *pentry, l *plist) {
	l.remove(e)
	delete(st.entries, e.key)
	st.evicted++
}
