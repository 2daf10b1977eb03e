// Package balance holds the load-balancing policies. It is pure decision code
// (DESIGN.md principle 2): no I/O, no net/http, no wall clock, no global
// randomness. Time and random numbers arrive as arguments, so the proxy and
// the simulator run exactly the same code.
//
// The contract, in the grpc-go shape:
//
//  1. A Balancer is created per service from a registered Policy with its
//     validated options. It keeps per-endpoint policy state across updates.
//  2. Whenever the endpoint set, the weights or the health change, the owner
//     calls Balancer.Update with the eligible endpoints and gets a new,
//     immutable Picker. The owner publishes it with one atomic store.
//  3. Pick may run on any goroutine at any time; it never blocks and takes no
//     lock. A pick in flight keeps using the Picker it loaded.
//  4. Every successful Pick is followed by exactly one Done on the same
//     Picker, carrying the outcome. Policies learn from Done; in-flight
//     counts are maintained by Pick/Done.
package balance

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoEndpoint is returned by Pick when no eligible endpoint is left (all
// excluded, or the set is empty).
var ErrNoEndpoint = errors.New("no endpoint available")

// Rand is the source of randomness a policy may use. The proxy passes a fast
// per-CPU generator; the simulator a seeded one.
type Rand interface {
	Uint64() uint64
}

// Endpoint is the long-lived identity and shared counters of one backend. One
// Endpoint value lives as long as the backend stays in the service's
// configuration, across any number of Picker snapshots.
type Endpoint struct {
	// ID is the stable identity (the configured address). Hash rings and
	// affinity cookies are derived from it.
	ID string
	// inflight counts picks that have not seen Done yet, across snapshots.
	inflight atomic.Int64
	// Load is the last load report the backend attached to a response.
	lastRIF  atomic.Int64
	lastUtil atomic.Uint64 // math.Float64bits
}

// NewEndpoint returns an endpoint with the given identity.
func NewEndpoint(id string) *Endpoint { return &Endpoint{ID: id} }

// InFlight returns the number of requests picked for this endpoint and not
// yet done.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Weighted is an endpoint with its effective weight for one snapshot
// (configured weight × slow-start factor × directive weight).
type Weighted struct {
	Endpoint *Endpoint
	Weight   float64
}

// PickInfo is what a pick may look at. The caller owns it and may reuse it.
type PickInfo struct {
	// Now is the caller's clock reading.
	Now time.Time
	// Rand supplies randomness.
	Rand Rand
	// Hash is the request's affinity key hash, meaningful when HasHash.
	Hash    uint64
	HasHash bool
	// Exclude lists endpoints this request has already tried; a pick avoids
	// them (retries go to a different endpoint).
	Exclude []*Endpoint
}

// Excluded reports whether e is in info.Exclude.
func (info *PickInfo) Excluded(e *Endpoint) bool {
	for _, x := range info.Exclude {
		if x == e {
			return true
		}
	}
	return false
}

// Pick is a picker's answer.
type Pick struct {
	Endpoint *Endpoint
	// Slot is the endpoint's index in the slice the picker was built from;
	// it is only meaningful to that picker.
	Slot int
}

// LoadReport is a backend's self-reported load (the X-Lbsys-Load header).
type LoadReport struct {
	Valid bool
	// RIF is requests in flight at the backend.
	RIF int64
	// Util is utilisation in [0, 1].
	Util float64
}

// DoneInfo is the outcome of one attempt.
type DoneInfo struct {
	// Now is the clock reading when the response headers (or the error)
	// arrived.
	Now time.Time
	// Latency is the time from pick to response headers or error.
	Latency time.Duration
	// Status is the HTTP status, 0 when the attempt failed without one.
	Status int
	// Failed is true for transport failures (connect error, reset, timeout).
	Failed bool
	// Load is the backend's load report, if it sent one.
	Load LoadReport
}

// Picker is an immutable snapshot that chooses endpoints.
type Picker interface {
	// Pick chooses an endpoint or returns ErrNoEndpoint. It never blocks.
	Pick(info *PickInfo) (Pick, error)
	// Take picks the endpoint at slot (its index in the slice given to
	// Update) because something outside the policy decided, such as a sticky
	// affinity cookie. It keeps the same accounting as Pick: a Done follows.
	Take(slot int) Pick
	// Done reports the outcome of a pick made by this picker.
	Done(p Pick, info *DoneInfo)
}

// Balancer turns endpoint sets into pickers and keeps policy state (EWMA
// costs, probe pools) across them. Update is called by one goroutine at a
// time; the pickers it returns are safe for concurrent use.
type Balancer interface {
	// Update builds a picker over eps. eps may be empty (the picker then
	// always returns ErrNoEndpoint). The caller must not modify eps later.
	Update(eps []Weighted) Picker
	// Describe returns the policy's internal view for /status.
	Describe() any
}

// Policy is a registered balancing algorithm.
type Policy struct {
	// Name is the configuration name, e.g. "least_request".
	Name string
	// Doc is a one-line description for --help and docs.
	Doc string
	// New validates options and returns a Balancer factory. decode fills a
	// struct from the user's options (strictly: unknown fields are errors);
	// it is nil when no options were given.
	New func(decode func(into any) error) (func() Balancer, error)
}

var (
	regMu    sync.RWMutex
	registry = map[string]Policy{}
)

// Register adds a policy. It panics on duplicate names (a programming error).
func Register(p Policy) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[p.Name]; dup {
		panic("balance: policy registered twice: " + p.Name)
	}
	registry[p.Name] = p
}

// Lookup returns the named policy.
func Lookup(name string) (Policy, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	p, ok := registry[name]
	return p, ok
}

// Names returns the registered policy names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds a Balancer factory for the named policy.
func New(name string, decode func(into any) error) (func() Balancer, error) {
	p, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown policy %q: use one of %v", name, Names())
	}
	return p.New(decode)
}

// decodeInto runs decode (if any) into cfg.
func decodeInto(decode func(any) error, cfg any) error {
	if decode == nil {
		return nil
	}
	return decode(cfg)
}

// begin and end maintain the shared in-flight count; every policy calls them
// from Pick and Done so that counts stay right across policy switches.
func begin(e *Endpoint) { e.inflight.Add(1) }
func end(e *Endpoint)   { e.inflight.Add(-1) }

// StoreLoad records a backend load report on the endpoint. Every Done of
// every policy calls it, and an atomic store is a locked instruction on
// amd64: a value that did not change (a utilisation the backend does not
// report stays 0) is not written again.
func (e *Endpoint) storeLoad(l LoadReport) {
	if !l.Valid {
		return
	}
	if e.lastRIF.Load() != l.RIF {
		e.lastRIF.Store(l.RIF)
	}
	if u := math.Float64bits(l.Util); e.lastUtil.Load() != u {
		e.lastUtil.Store(u)
	}
}

// uniform returns a number in [0, n) from a 32-bit random value using
// Lemire's multiply-shift (bias is below 2^-32·n, negligible here).
func uniform(r uint32, n int) int {
	return int((uint64(r) * uint64(n)) >> 32)
}

// sampleCandidates fills out with k candidate indices among n endpoints for
// a power-of-d-choices pick: in proportion to weight when alias is set,
// uniformly otherwise, and distinct where possible. Finagle's P2C draws two
// distinct nodes too: with replacement, an endpoint would be compared with
// itself 1/n of the time and a slow endpoint would keep a floor of 1/n² of
// the traffic for nothing.
func sampleCandidates(r Rand, n int, alias *aliasTable, out []int) []int {
	out = out[:0]
	k := cap(out)
	if k > n {
		k = n
	}
	for len(out) < k {
		var c int
		for try := 0; ; try++ {
			if alias != nil {
				c = alias.sample(r.Uint64())
			} else {
				c = uniform(uint32(r.Uint64()>>32), n)
			}
			if try >= 8 || !containsInt(out, c) {
				break
			}
		}
		out = append(out, c)
	}
	return out
}

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
