package sim

// The simulated proxy's queues and free lists: the FIFO of requests that
// wait for a timeout, and the pools of requests, attempts and probes.

// reqFIFO is a growable ring of (request, generation).
type reqFIFO struct {
	buf        []reqRef
	head, size int
}

type reqRef struct {
	r   *request
	gen uint32
}

func (q *reqFIFO) push(r *request) {
	if q.size == len(q.buf) {
		n := max(16, 2*len(q.buf))
		nb := make([]reqRef, n)
		for i := 0; i < q.size; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = reqRef{r, r.gen}
	q.size++
}

func (q *reqFIFO) peek() (*request, uint32, bool) {
	if q.size == 0 {
		return nil, 0, false
	}
	x := q.buf[q.head]
	return x.r, x.gen, true
}

func (q *reqFIFO) pop() {
	q.buf[q.head] = reqRef{}
	q.head++
	if q.head == len(q.buf) {
		q.head = 0
	}
	q.size--
}

// dropDone pops the answered requests at the head. Deadlines are only
// checked when the oldest one falls due, so without this the ring would
// hold every request of the last timeout span (30s by default: tens of
// thousands of entries for the garbage collector to scan); with it, it
// reaches back only to the oldest request still in flight. The live
// entries, their order and the expiry timer are the same either way.
func (q *reqFIFO) dropDone() {
	for q.size > 0 {
		x := &q.buf[q.head]
		if x.r.gen == x.gen && !x.r.done {
			return
		}
		q.pop()
	}
}

// Free lists.

// popFree takes the last object off a free list, or returns nil.
func popFree[T any](free *[]*T) *T {
	n := len(*free)
	if n == 0 {
		return nil
	}
	x := (*free)[n-1]
	*free = (*free)[:n-1]
	return x
}

func (s *Sim) allocRequest() *request {
	if r := popFree(&s.freeReqs); r != nil {
		return r
	}
	return &request{s: s}
}

func (s *Sim) freeRequest(r *request) {
	gen := r.gen + 1
	*r = request{s: s, gen: gen}
	s.freeReqs = append(s.freeReqs, r)
}

func (s *Sim) allocAttempt() *attempt {
	if a := popFree(&s.freeAtts); a != nil {
		return a
	}
	return &attempt{s: s}
}

func (s *Sim) freeAttempt(a *attempt) {
	gen := a.gen + 1
	*a = attempt{s: s, gen: gen}
	s.freeAtts = append(s.freeAtts, a)
}

func (s *Sim) allocProbe() *probe {
	if p := popFree(&s.freeProbe); p != nil {
		return p
	}
	return &probe{s: s}
}

func (s *Sim) freeProbeObj(p *probe) {
	*p = probe{s: s}
	s.freeProbe = append(s.freeProbe, p)
}
