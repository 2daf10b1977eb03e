package ui

import (
	"math"
	"time"

	"github.com/lbsys/lbsys/internal/telemetry"
)

// observeMinutes adds one second of service records to each service's
// minute, and judges a minute against the SLO when the first second of
// the next one arrives. Services that are gone (removed by a reload) have
// their minute judged and dropped, so the map holds the services the proxy
// has.
func (c *Collector) observeMinutes(ts time.Time, recs []telemetry.Record) {
	m := ts.Truncate(time.Minute).Unix()
	for _, r := range recs {
		if r.Endpoint != "" {
			continue
		}
		acc := c.minutes[r.Service]
		if acc == nil {
			acc = &minuteAcc{minute: m}
			c.minutes[r.Service] = acc
		}
		switch {
		case m < acc.minute:
			continue // a clock that went back: the minute was judged
		case m > acc.minute:
			c.judgeMinute(r.Service, acc)
			*acc = minuteAcc{minute: m}
		}
		if r.Requests <= 0 {
			continue
		}
		acc.requests += r.Requests
		acc.errors += max(0, min(r.Errors, r.Requests))
		if p99 := r.P99ms; p99 > 0 && !math.IsInf(p99, 1) {
			acc.p99w += p99 * float64(r.Requests)
		}
	}
	for name, acc := range c.minutes {
		if _, ok := c.recIdx[name]; !ok {
			c.judgeMinute(name, acc)
			c.closeIncident(name)
			delete(c.minutes, name)
		}
	}
}

// judgeMinute decides whether a finished minute violated the SLO and
// opens, extends or closes the service's incident.
func (c *Collector) judgeMinute(service string, acc *minuteAcc) {
	if acc.requests == 0 {
		c.closeIncident(service)
		return
	}
	errRate := float64(acc.errors) / float64(acc.requests)
	p99 := acc.p99w / float64(acc.requests)
	if math.IsInf(p99, 0) || math.IsNaN(p99) {
		p99 = math.MaxFloat64 // overflowed: slow beyond measure, and still JSON
	}
	slowBreach := p99 > c.opts.SLO.MaxP99ms
	errBreach := errRate > c.opts.SLO.MaxErrorRate
	if !slowBreach && !errBreach {
		c.closeIncident(service)
		return
	}
	start := time.Unix(acc.minute, 0).UTC()
	end := start.Add(time.Minute)
	inc := c.openIncident(service)
	if inc == nil || !inc.End.Equal(start) {
		if inc != nil {
			inc.Open = false
		}
		c.incidents = pushBounded(c.incidents, Incident{Service: service, Start: start, End: start, Open: true}, c.opts.Incidents)
		inc = &c.incidents[len(c.incidents)-1]
	}
	inc.End = end
	inc.Minutes++
	if slowBreach {
		inc.LatencyMinutes++
	}
	if errBreach {
		inc.ErrorMinutes++
	}
	inc.WorstP99ms = max(inc.WorstP99ms, p99)
	inc.WorstErrorRate = max(inc.WorstErrorRate, errRate)
}

// openIncident returns the service's open incident, nil when none.
func (c *Collector) openIncident(service string) *Incident {
	for i := len(c.incidents) - 1; i >= 0; i-- {
		if c.incidents[i].Service == service && c.incidents[i].Open {
			return &c.incidents[i]
		}
	}
	return nil
}

func (c *Collector) closeIncident(service string) {
	if inc := c.openIncident(service); inc != nil {
		inc.Open = false
	}
}
