package sim

import (
	"github.com/lbsys/lbsys/internal/balance"
)

// The simulated proxy's Prequal probes (the probe driver's tick and the
// probes on the wire).

// sendProbes is the prequal probe driver's tick.
func (ps *proxySvc) sendProbes() {
	s := ps.px.s
	n := ps.prober.ProbesOwed()
	if n <= 0 {
		return
	}
	if n > maxProbesInFlight {
		n = maxProbesInFlight // a backlog is stale anyway
	}
	ps.probeBuf = ps.prober.ProbeTargets(ps.px.rng, n, ps.probeBuf[:0])
	for _, e := range ps.probeBuf {
		r := ps.byEp[e]
		if r == nil {
			continue
		}
		if s.rtt == 0 {
			if r.up() {
				ps.prober.ObserveProbe(e, r.rif(), 0, s.eng.wall(s.now()))
			}
			continue
		}
		if ps.probesOut >= maxProbesInFlight {
			continue // probes already saturate; skip rather than queue
		}
		ps.probesOut++
		p := s.allocProbe()
		p.ps, p.ep, p.rep = ps, e, r
		s.eng.afterLane(laneRTT, s.rtt/2, p, 0)
	}
}

const maxProbesInFlight = 64

// probe is one prequal probe on the wire.
type probe struct {
	s   *Sim
	ps  *proxySvc
	ep  *balance.Endpoint
	rep *replica
	rif int64
}

func (p *probe) handle(arg int64) {
	s := p.s
	if arg == 0 { // at the replica
		if !p.rep.up() {
			p.ps.probesOut-- // refused: the driver drops it
			s.freeProbeObj(p)
			return
		}
		p.rif = p.rep.rif()
		s.eng.afterLane(laneRTT, s.rtt/2, p, 1)
		return
	}
	p.ps.probesOut--
	p.ps.prober.ObserveProbe(p.ep, p.rif, 0, s.eng.wall(s.now()))
	s.freeProbeObj(p)
}
