package cache

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
)

// entry is one stored response. Everything but age is immutable after it
// is built; header value slices are shared with responses and never
// modified.
type entry struct {
	status   int
	header   http.Header // stored fields (§3.1), without Content-Length and Age
	fields   []field     // header as a list: a hit copies it without a map walk
	nmFields []field     // the fields of a 304 sent from the cache
	body     []byte
	clen     []string // {len(body)}

	etag, lastModified string
	date               time.Time
	stored             rfc9111.Stored

	vary     []string // canonical names the response varies on
	varyVals []string // the storing request's normalised values for them
	tags     []string // purge tags
	warmed   bool     // stored by warming, for the warm-hit count

	hitStatus, staleStatus, revalidatedStatus []string // Cache-Status values

	size uint32
	age  atomic.Pointer[ageValue]
}

type field struct {
	k string
	v []string
}

type ageValue struct {
	secs int64
	v    []string
}

// ageHeader returns the Age value at now (§5.1, seconds since the response
// was generated or validated by the origin), formatted once per second.
func (e *entry) ageHeader(now time.Time) []string {
	secs := int64(e.stored.CurrentAge(now) / time.Second)
	if p := e.age.Load(); p != nil && p.secs == secs {
		return p.v
	}
	p := &ageValue{secs: secs, v: []string{strconv.FormatInt(secs, 10)}}
	e.age.Store(p)
	return p.v
}

// matches reports whether the entry was stored for a request that selects
// it (§4.1).
func (e *entry) matches(req http.Header) bool {
	return len(e.vary) == 0 || rfc9111.VaryMatches(e.vary, e.varyVals, rfc9111.Header(req))
}

// resource is what the store holds for one key: the stored variants of a
// URL (newest first), or a hit-for-pass marker when its last response
// could not be stored. It is immutable: updates build a new one.
type resource struct {
	variants  []*entry
	passUntil time.Time // while in the future, requests skip coalescing
	size      uint32    // weight in bytes, for otter
	retain    time.Duration
}

// selectVariant returns the newest stored response the request selects.
func (r *resource) selectVariant(req http.Header) *entry {
	for _, e := range r.variants {
		if e.matches(req) {
			return e
		}
	}
	return nil
}

// resourceOverhead approximates the bookkeeping of a stored URL beyond its
// bodies and headers (structs, slices, otter's node).
const resourceOverhead = 256

// entryOverhead approximates an entry's bookkeeping.
const entryOverhead = 512

// newResource builds a resource from variants (newest first), computing its
// weight and how long the store keeps it.
func newResource(k Key, variants []*entry, now time.Time, p *rfc9111.Policy, keep time.Duration) *resource {
	r := &resource{variants: variants}
	size := uint64(resourceOverhead + len(k.Route) + len(k.Host) + len(k.Target))
	var until time.Time
	for _, e := range variants {
		size += uint64(e.size)
		if u := e.stored.ResponseTime.Add(e.stored.Retention(p, keep)); u.After(until) {
			until = u
		}
	}
	if size > 1<<32-1 {
		size = 1<<32 - 1
	}
	r.size = uint32(size)
	r.retain = until.Sub(now)
	if r.retain < time.Second {
		r.retain = time.Second
	}
	return r
}

// passResource is a hit-for-pass marker.
func passResource(k Key, now time.Time, ttl time.Duration) *resource {
	return &resource{passUntil: now.Add(ttl), size: uint32(resourceOverhead + len(k.Route) + len(k.Host) + len(k.Target)), retain: ttl}
}

// excludedFromFields are stored fields a hit sets itself.
var excludedFromFields = map[string]bool{"Content-Length": true, "Age": true, "Cache-Status": true, "X-Cache": true}

// newEntry builds a stored response from an analysed exchange.
func newEntry(x *rfc9111.Exchange, a *rfc9111.Analysis, rt *Route, body []byte, warmed bool) *entry {
	h := http.Header(rfc9111.StorableHeader(x.RespHeader, &rt.policy))
	e := &entry{
		status: x.Status, header: h, body: body,
		etag: a.ETag, lastModified: a.LastModified, date: a.Date,
		stored: rfc9111.NewStored(x, a),
		vary:   a.Vary, warmed: warmed,
	}
	if len(a.Vary) > 0 {
		e.varyVals = rfc9111.SelectingValues(a.Vary, x.ReqHeader)
	}
	e.finish(rt)
	return e
}

// finish derives the precomputed parts of an entry from its header.
func (e *entry) finish(rt *Route) {
	h := e.header
	size := entryOverhead + len(e.body)
	e.fields = e.fields[:0]
	for k, v := range h {
		// Values are shared with every response: with no spare capacity,
		// an append by whoever holds the response header (h.Add) copies
		// instead of writing into the shared array.
		v = v[:len(v):len(v)]
		h[k] = v
		for _, s := range v {
			size += len(k) + len(s) + 32
		}
		if !excludedFromFields[k] {
			e.fields = append(e.fields, field{k, v})
		}
	}
	for _, k := range rfc9111.NotModifiedFields {
		if v, ok := h[k]; ok {
			e.nmFields = append(e.nmFields, field{k, v})
		}
	}
	if _, ok := h["Etag"]; !ok {
		if v, ok := h["Last-Modified"]; ok {
			e.nmFields = append(e.nmFields, field{"Last-Modified", v})
		}
	}
	for _, v := range e.varyVals {
		size += len(v) + 16
	}
	if e.status != http.StatusNoContent {
		e.clen = []string{strconv.Itoa(len(e.body))}
	}
	e.tags = nil
	if rt.tagHeader != "" {
		for _, line := range h[rt.tagHeader] {
			for _, t := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				if len(e.tags) < 64 {
					e.tags = append(e.tags, t)
				}
			}
		}
	}
	upstream := h["Cache-Status"]
	withOurs := func(member string) []string {
		out := make([]string, 0, len(upstream)+1)
		return append(append(out, upstream...), member)
	}
	e.hitStatus = withOurs(statusHit)
	e.staleStatus = withOurs(statusStaleHit)
	e.revalidatedStatus = withOurs(statusRevalidated)
	if size > 1<<32-1 {
		size = 1<<32 - 1
	}
	e.size = uint32(size)
}

// refreshed returns a copy of e updated by a 304 (§4.3.4): merged header,
// new freshness and age from the 304's exchange. storable is false when the
// updated response may no longer be stored (the 304 brought no-store or
// private, say): it may answer this request but must leave the store.
func (e *entry) refreshed(x *rfc9111.Exchange, rt *Route, p *rfc9111.Policy) (ne *entry, storable bool) {
	merged := rfc9111.UpdateHeader(rfc9111.Header(e.header), x.RespHeader, p)
	// Analyse the merged response as if the origin had sent it now.
	mx := *x
	mx.Status = e.status
	mx.RespHeader = merged
	mx.ContentLength = int64(len(e.body))
	a := rfc9111.Analyze(&mx, p)
	ne = &entry{
		status: e.status, header: http.Header(merged), body: e.body,
		etag: a.ETag, lastModified: a.LastModified, date: a.Date,
		stored: rfc9111.NewStored(&mx, &a),
		vary:   e.vary, varyVals: e.varyVals, warmed: e.warmed,
	}
	ne.finish(rt)
	return ne, a.Storable
}
