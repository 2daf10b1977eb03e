package balance

import (
	"math"
	"testing"
	"time"
	"unsafe"
)

// TestPrequalStateLayout: everything a pick reads of a pooled probe is in
// the state's first 64 bytes, and the state is 128 bytes, a size class
// whose objects the allocator aligns to 128: one cache line per probe.
func TestPrequalStateLayout(t *testing.T) {
	var st pqState
	if got := unsafe.Sizeof(st); got != 128 {
		t.Errorf("pqState is %d bytes, want 128 (pad it so the pick-read fields keep their own cache line)", got)
	}
	for name, end := range map[string]uintptr{
		"probe":   unsafe.Offsetof(st.probe) + unsafe.Sizeof(st.probe),
		"lat":     unsafe.Offsetof(st.lat) + unsafe.Sizeof(st.lat),
		"at":      unsafe.Offsetof(st.at) + unsafe.Sizeof(st.at),
		"errEWMA": unsafe.Offsetof(st.errEWMA) + unsafe.Sizeof(st.errEWMA),
		"born":    unsafe.Offsetof(st.born) + unsafe.Sizeof(st.born),
		"span":    unsafe.Offsetof(st.span) + unsafe.Sizeof(st.span),
		"ep":      unsafe.Offsetof(st.ep) + unsafe.Sizeof(st.ep),
	} {
		if end > 64 {
			t.Errorf("pqState.%s ends at byte %d, beyond the first cache line", name, end)
		}
	}
	// The alignment is the allocator's doing (size classes of 128 bytes
	// start on page boundaries), not a language guarantee: report it.
	b := NewPrequal(PrequalOptions{PoolSize: 16, ProbeRate: 1, QRIF: 0.84, MaxAge: time.Second, MaxReuse: 4, ProbePath: "/", ErrorThreshold: 0.5}).(*prequal)
	b.Update(endpoints(make([]float64, 100)...))
	unaligned := 0
	for _, st := range *b.states.Load() {
		if uintptr(unsafe.Pointer(st))%128 != 0 {
			unaligned++
		}
	}
	if unaligned > 0 {
		t.Logf("%d of 100 states are not 128-byte aligned: picks touch two cache lines for those", unaligned)
	}
}

// TestPrequalPickerKeepsItsEndpoints: after an Update removes endpoint A
// and adds B (which takes A's id), a pick on the old picker may still
// choose A, whose probe lingers, and never B; a pick on the new picker
// never chooses A and may choose B. Each picker's best probe is the one
// only it may use.
func TestPrequalPickerKeepsItsEndpoints(t *testing.T) {
	o := PrequalOptions{MaxReuse: 100}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	b := NewPrequal(o).(*prequal)
	eps := endpoints(1, 1, 1, 1)
	a := eps[0].Endpoint
	old := b.Update(eps).(*pqPicker)
	ms := time.Millisecond
	b.ObserveProbe(a, 0, 1*ms, tBase)
	for _, w := range eps[1:] {
		b.ObserveProbe(w.Endpoint, 0, 5*ms, tBase)
	}
	bEp := NewEndpoint("10.0.0.99:80")
	next := append(append([]Weighted{}, eps[1:]...), Weighted{Endpoint: bEp, Weight: 1})
	cur := b.Update(next).(*pqPicker)
	if (*b.states.Load())[bEp].id != old.states[0].id {
		t.Fatalf("the new endpoint did not take the old one's id: the test no longer covers id reuse")
	}
	b.ObserveProbe(bEp, 0, ms/2, tBase)
	for k := range 3 {
		pk, err := old.Pick(&PickInfo{Now: tBase, Rand: newSeeded(uint64(k))})
		if err != nil {
			t.Fatal(err)
		}
		if pk.Endpoint != a || old.eps[pk.Slot].Endpoint != a {
			t.Fatalf("old picker chose %s (slot %d), want %s, its fastest", pk.Endpoint.ID, pk.Slot, a.ID)
		}
		// The response reports the RIF back to 0, so the next pick
		// compares the same probes.
		old.Done(pk, &DoneInfo{Now: tBase, Status: 200, Load: LoadReport{Valid: true}})
		pk, err = cur.Pick(&PickInfo{Now: tBase, Rand: newSeeded(uint64(k))})
		if err != nil {
			t.Fatal(err)
		}
		if pk.Endpoint != bEp || cur.eps[pk.Slot].Endpoint != bEp {
			t.Fatalf("new picker chose %s (slot %d), want %s, its fastest", pk.Endpoint.ID, pk.Slot, bEp.ID)
		}
		cur.Done(pk, &DoneInfo{Now: tBase, Status: 200, Load: LoadReport{Valid: true}})
	}
}

// TestPrequalProbeWordBounds: a RIF report beyond what the probe word
// holds is clamped (RIF counts requests: 2^42 of them is already absurd)
// rather than wrapping into a negative, and max_reuse beyond the use
// count's range acts as its maximum, so one probe still steers that many
// queries.
func TestPrequalProbeWordBounds(t *testing.T) {
	for _, c := range []struct {
		report, want int64
	}{
		{0, 0}, {7, 7}, {maxProbeRIF, maxProbeRIF}, {math.MaxInt64, maxProbeRIF}, {-1, -1}, {math.MinInt64, -maxProbeRIF},
	} {
		if got := probeRIF(probeWord(c.report)); got != c.want {
			t.Errorf("RIF report %d reads back as %d, want %d", c.report, got, c.want)
		}
		if uses := probeWord(c.report) & usesMask; uses != 0 {
			t.Errorf("RIF report %d starts with %d uses, want 0", c.report, uses)
		}
	}
	// A pick adds one request and one use to the word, whatever the sign
	// of the RIF.
	for _, rif := range []int64{-5, 0, 5, maxProbeRIF} {
		w := probeWord(rif) + (1<<usesBits | 1)
		if probeRIF(w) != rif+1 || w&usesMask != 1 {
			t.Errorf("after one pick, RIF %d reads %d with %d uses, want %d with 1", rif, probeRIF(w), w&usesMask, rif+1)
		}
	}
	b := NewPrequal(PrequalOptions{PoolSize: 16, ProbeRate: 1, QRIF: 0.84, MaxAge: time.Second, MaxReuse: math.MaxInt32, ProbePath: "/", ErrorThreshold: 0.5}).(*prequal)
	if b.maxReuse != maxCountedUses {
		t.Errorf("max_reuse %d counts up to %d, want %d", math.MaxInt32, b.maxReuse, maxCountedUses)
	}
}
