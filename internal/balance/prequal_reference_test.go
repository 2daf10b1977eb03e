package balance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The hot-cold rule written the plain way, from the paper and the
// prequal doc comment: sort the pool's RIFs, interpolate the quantile,
// compare candidates with explicit lexicographic rules. Pick must make the
// same decision and leave the pool in the same state, whatever the pool,
// the options, the failing replicas, the exclusions and the picker (the
// newest or one an Update replaced); TestPrequalMatchesReference checks it
// over thousands of random steps, FuzzPrequalMatchesReference over as many
// as the fuzzer likes.

// pqSlotView is what the reference sees of one pool slot.
type pqSlotView struct {
	ep   *Endpoint
	rif  int64
	lat  float64
	at   int64
	uses int64
	bad  bool
}

// refDecision is the reference's answer for one pick.
type refDecision struct {
	fallback bool      // fewer than two usable probes: a random pick
	chosen   *Endpoint // when !fallback
	removed  []int     // pool slots the pick empties (expired, retired, worst)
}

// referencePick decides one pick from a view of the pool.
func referencePick(pool []*pqSlotView, o PrequalOptions, now time.Time, inPicker func(*Endpoint) bool, excluded func(*Endpoint) bool) refDecision {
	type cand struct {
		slot int
		v    *pqSlotView
	}
	var d refDecision
	var cs []cand
	for i, v := range pool {
		switch {
		case v == nil:
		case now.UnixNano()-v.at > int64(o.MaxAge):
			d.removed = append(d.removed, i)
		case !inPicker(v.ep) || excluded(v.ep):
		default:
			cs = append(cs, cand{i, v})
		}
	}
	if len(cs) < 2 {
		d.fallback = true
		return d
	}
	rifs := make([]int64, len(cs))
	for i, c := range cs {
		rifs[i] = c.v.rif
	}
	slices.Sort(rifs)
	n := len(cs)
	h := o.QRIF * float64(n-1)
	lo := int(h)
	hotAbove := float64(rifs[lo])
	if lo+1 < n {
		hotAbove += (h - float64(lo)) * float64(rifs[lo+1]-rifs[lo])
	}
	cold := func(v *pqSlotView) bool { return !v.bad && float64(v.rif) <= hotAbove }
	// better: cold before hot; cold by latency then RIF; hot healthy
	// before failing, then RIF, then latency.
	better := func(a, b *pqSlotView) bool {
		if cold(a) != cold(b) {
			return cold(a)
		}
		if cold(a) {
			if a.lat != b.lat {
				return a.lat < b.lat
			}
			return a.rif < b.rif
		}
		if a.bad != b.bad {
			return !a.bad
		}
		if a.rif != b.rif {
			return a.rif < b.rif
		}
		return a.lat < b.lat
	}
	// worse: failing first, then RIF, then latency.
	worse := func(a, b *pqSlotView) bool {
		if a.bad != b.bad {
			return a.bad
		}
		if a.rif != b.rif {
			return a.rif > b.rif
		}
		return a.lat > b.lat
	}
	best, worst := 0, 0
	for i := 1; i < n; i++ {
		if better(cs[i].v, cs[best].v) {
			best = i
		}
		if worse(cs[i].v, cs[worst].v) {
			worst = i
		}
	}
	d.chosen = cs[best].v.ep
	if cs[best].v.uses+1 >= int64(min(o.MaxReuse, maxCountedUses)) {
		d.removed = append(d.removed, cs[best].slot)
	}
	if w := cs[worst].v; worst != best && n > 2 && (w.bad || float64(w.rif) > hotAbove) {
		d.removed = append(d.removed, cs[worst].slot)
	}
	slices.Sort(d.removed)
	return d
}

// pqScenario drives one prequal balancer with random but reproducible
// steps: probe answers, responses (some failing, some with load reports),
// endpoint set changes, time passing, and picks, each checked against
// referencePick.
type pqScenario struct {
	t       testing.TB
	r       *rand.Rand
	b       *prequal
	o       PrequalOptions
	all     []*Endpoint // every endpoint ever used
	cur     []Weighted  // the newest picker's endpoints
	pickers []*pqPicker // the newest last
	sets    [][]Weighted
	now     time.Time
	picks   int
	checked int
}

func newPQScenario(t testing.TB, seed uint64) *pqScenario {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	qs := []float64{0.01, 0.3, 0.5, 0.84, 0.9, 0.99, 0.05 + 0.9*r.Float64()}
	o := PrequalOptions{
		PoolSize: 2 + r.IntN(maxProbePool-1),
		QRIF:     qs[r.IntN(len(qs))],
		MaxReuse: 1 + r.IntN(6),
		MaxAge:   time.Second,
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &pqScenario{t: t, r: r, b: NewPrequal(o).(*prequal), o: o, now: tBase}
	sizes := []int{2, 3, 5, 10, 40}
	s.update(sizes[r.IntN(len(sizes))])
	return s
}

// update replaces the endpoint set: keeps a random part, adds new ones.
func (s *pqScenario) update(n int) {
	var next []Weighted
	for _, w := range s.cur {
		if s.r.IntN(4) != 0 {
			next = append(next, Weighted{Endpoint: w.Endpoint, Weight: float64(1 + s.r.IntN(3))})
		}
	}
	for len(next) < n {
		e := NewEndpoint(fmt.Sprintf("10.1.%d.%d:80", len(s.all)/250, len(s.all)%250))
		s.all = append(s.all, e)
		next = append(next, Weighted{Endpoint: e, Weight: float64(1 + s.r.IntN(3))})
	}
	s.r.Shuffle(len(next), func(i, j int) { next[i], next[j] = next[j], next[i] })
	s.cur = next
	s.sets = append(s.sets, next)
	s.pickers = append(s.pickers, s.b.Update(next).(*pqPicker))
}

func (s *pqScenario) rif() int64 {
	switch s.r.IntN(10) {
	case 0:
		return s.r.Int64N(1_000_000)
	case 1:
		return 0
	default:
		return s.r.Int64N(8) // small values tie often
	}
}

func (s *pqScenario) latency() time.Duration {
	switch s.r.IntN(4) {
	case 0:
		return 0 // the endpoint's estimate from responses
	case 1:
		return time.Duration(1+s.r.IntN(3)) * time.Millisecond // ties
	default:
		return time.Duration(1 + s.r.Int64N(int64(20*time.Millisecond)))
	}
}

func (s *pqScenario) randomEndpoint() *Endpoint {
	if s.r.IntN(8) == 0 {
		return s.all[s.r.IntN(len(s.all))] // maybe one that left
	}
	return s.cur[s.r.IntN(len(s.cur))].Endpoint
}

// picker returns the newest picker, or now and then an older one.
func (s *pqScenario) picker() (*pqPicker, []Weighted) {
	i := len(s.pickers) - 1
	if i > 0 && s.r.IntN(4) == 0 {
		i = s.r.IntN(i)
	}
	return s.pickers[i], s.sets[i]
}

func (s *pqScenario) step() {
	switch a := s.r.IntN(20); {
	case a < 6: // a probe answer
		age := time.Duration(s.r.Int64N(int64(1500 * time.Millisecond)))
		if s.r.IntN(2) == 0 {
			age = 0
		}
		s.b.ObserveProbe(s.randomEndpoint(), s.rif(), s.latency(), s.now.Add(-age))
	case a < 8: // a response through Take, maybe failing
		p, set := s.picker()
		if len(set) == 0 {
			return
		}
		pk := p.Take(s.r.IntN(len(set)))
		s.done(p, pk)
	case a < 9:
		s.now = s.now.Add(time.Duration(s.r.Int64N(int64(300 * time.Millisecond))))
	case a < 10 && s.r.IntN(5) == 0:
		s.update(1 + s.r.IntN(12))
	default:
		s.pick()
	}
}

func (s *pqScenario) done(p *pqPicker, pk Pick) {
	info := DoneInfo{Now: s.now, Status: 200, Latency: s.latency() + time.Microsecond}
	if s.r.IntN(3) == 0 {
		info.Status = 503
	}
	if s.r.IntN(2) == 0 {
		info.Load = LoadReport{Valid: true, RIF: s.rif()}
	}
	p.Done(pk, &info)
}

// pick makes one pick and compares it with the reference.
func (s *pqScenario) pick() {
	t := s.t
	t.Helper()
	p, set := s.picker()
	var exclude []*Endpoint
	for range s.r.IntN(3) {
		exclude = append(exclude, s.randomEndpoint())
	}
	in := map[*Endpoint]bool{}
	for _, w := range set {
		in[w.Endpoint] = true
	}
	info := &PickInfo{Now: s.now, Rand: newSeeded(s.r.Uint64()), Exclude: exclude}
	before := poolView(s.b)
	want := referencePick(before, s.o, s.now, func(e *Endpoint) bool { return in[e] }, info.Excluded)
	pk, err := p.Pick(info)
	s.picks++
	if !slices.ContainsFunc(set, func(w Weighted) bool { return !info.Excluded(w.Endpoint) }) {
		if err == nil {
			t.Fatalf("pick %d: picked %s though every endpoint is excluded", s.picks, pk.Endpoint.ID)
		}
		return
	}
	if err != nil {
		t.Fatalf("pick %d: %v", s.picks, err)
	}
	if set[pk.Slot].Endpoint != pk.Endpoint {
		t.Fatalf("pick %d: slot %d holds %s, the pick says %s", s.picks, pk.Slot, set[pk.Slot].Endpoint.ID, pk.Endpoint.ID)
	}
	after := poolView(s.b)
	if want.fallback {
		// A random pick: only expired probes leave, and no probe counts
		// the query.
		for i := range before {
			if slices.Contains(want.removed, i) {
				continue
			}
			if (before[i] == nil) != (after[i] == nil) || before[i] != nil && *before[i] != *after[i] {
				t.Fatalf("pick %d (random fallback): pool slot %d changed from %+v to %+v", s.picks, i, before[i], after[i])
			}
		}
	} else {
		s.checked++
		if pk.Endpoint != want.chosen {
			t.Fatalf("pick %d: chose %s, the reference chose %s\npool %s\noptions %+v", s.picks, pk.Endpoint.ID, want.chosen.ID, describePool(before, s.now, in, info), s.o)
		}
		var removed []int
		for i := range before {
			if before[i] != nil && after[i] == nil {
				removed = append(removed, i)
			}
		}
		if !slices.Equal(removed, want.removed) {
			t.Fatalf("pick %d: emptied pool slots %v, the reference %v\npool %s\noptions %+v", s.picks, removed, want.removed, describePool(before, s.now, in, info), s.o)
		}
		for i, v := range before {
			if v == nil || after[i] == nil {
				continue
			}
			w := *v
			if v.ep == want.chosen {
				w.rif++
				w.uses++
			}
			if *after[i] != w {
				t.Fatalf("pick %d: slot %d became %+v, want %+v", s.picks, i, *after[i], w)
			}
		}
	}
	if s.r.IntN(4) != 0 {
		s.done(p, pk)
	}
}

func describePool(pool []*pqSlotView, now time.Time, in map[*Endpoint]bool, info *PickInfo) string {
	out := fmt.Sprintf("(now %d)", now.UnixNano())
	for i, v := range pool {
		if v != nil {
			out += fmt.Sprintf("\n  [%d] %s rif=%d lat=%v age=%v uses=%d bad=%v in picker=%v excluded=%v",
				i, v.ep.ID, v.rif, v.lat, time.Duration(now.UnixNano()-v.at), v.uses, v.bad, in[v.ep], info.Excluded(v.ep))
		}
	}
	return out
}

func TestPrequalMatchesReference(t *testing.T) {
	steps, seeds := 400, 200
	if testing.Short() {
		seeds = 20
	}
	total, checked := 0, 0
	for seed := range uint64(seeds) {
		s := newPQScenario(t, seed)
		for range steps {
			s.step()
		}
		total += s.picks
		checked += s.checked
	}
	// The scenarios must exercise the rule itself, not only the random
	// fallback.
	if checked < total/3 {
		t.Fatalf("only %d of %d picks went through the probe pool", checked, total)
	}
	t.Logf("%d picks, %d decided by the pool", total, checked)
}

func FuzzPrequalMatchesReference(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, uint16(300))
	}
	f.Fuzz(func(t *testing.T, seed uint64, steps uint16) {
		s := newPQScenario(t, seed)
		for range int(steps) % 2000 {
			s.step()
		}
	})
}

// poolView reads the pool slot by slot.
func poolView(b *prequal) []*pqSlotView {
	out := make([]*pqSlotView, b.opts.PoolSize)
	for i := range out {
		st := b.pool[i].Load()
		if st == nil {
			continue
		}
		w := st.probe.Load()
		out[i] = &pqSlotView{ep: st.ep, rif: probeRIF(w), lat: math.Float64frombits(st.lat.Load()),
			at: st.at.Load(), uses: int64(w & usesMask),
			bad: math.Float64frombits(st.errEWMA.Load()) > b.opts.ErrorThreshold}
	}
	return out
}
