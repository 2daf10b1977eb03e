package scaler

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Config tunes the predictive floors; a zero field takes its default.
type Config struct {
	// TargetUtilization is the utilisation the floors plan for: the
	// reactive autoscaler's target, so that when the planned load arrives
	// the autoscaler finds its target met and adds nothing. Default 0.6
	// (the HPA's usual CPU target).
	TargetUtilization float64 `json:"target_utilization" yaml:"target_utilization"`
	// Tolerance is the reactive autoscaler's tolerance (HPA default 0.1):
	// outside announced events floors plan for TargetUtilization × (1 +
	// Tolerance), the most the autoscaler tolerates before it scales up
	// itself, so a floor there never holds more than the autoscaler would.
	Tolerance float64 `json:"tolerance" yaml:"tolerance"`
	// EventUtilization is the utilisation the upper estimate of an
	// announced event's load is sized at. Default TargetUtilization: the
	// capacity the operators' autoscaling policy asks for at the event's
	// peak, ready before it — the autoscaler then finds its target met
	// and does not fight the plan. A higher value (up to the most a
	// replica can run at within its objective) spends less before the
	// event and leaves the rest to the reactive side.
	EventUtilization float64 `json:"event_utilization" yaml:"event_utilization"`
	// Margin is how long before an announced event its capacity must be
	// ready. Default 10m: enough to absorb a late node and to see, before
	// the event, that the capacity is there.
	Margin time.Duration `json:"margin" yaml:"margin"`
	// Warmup is added to the observed startup time: a replica that just
	// became ready serves slower until its caches and JIT are warm.
	// Default 1m.
	Warmup time.Duration `json:"warmup" yaml:"warmup"`
	// SurpriseRatio: load above this many times what was expected (the
	// forecast's upper band, or an event's expected load) is a surprise;
	// the decision says so and leaves the lead to the reactive side.
	// Default 1.5.
	SurpriseRatio float64 `json:"surprise_ratio" yaml:"surprise_ratio"`
	// Hold keeps a floor this long after the decision that set it, so a
	// controller that stops deciding leaves the fleet as it was for a
	// while, then to the reactive autoscaler (a controller renews an
	// unchanged floor when half of it is left). Default 10m.
	Hold time.Duration `json:"hold" yaml:"hold"`
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.TargetUtilization <= 0 || c.TargetUtilization > 1 {
		c.TargetUtilization = 0.6
	}
	if c.Tolerance < 0 || c.Tolerance >= 1 {
		c.Tolerance = 0
	} else if c.Tolerance == 0 {
		c.Tolerance = 0.1
	}
	if c.EventUtilization <= 0 || c.EventUtilization > 1 {
		c.EventUtilization = c.TargetUtilization
	}
	if c.Margin <= 0 {
		c.Margin = 10 * time.Minute
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	} else if c.Warmup == 0 {
		c.Warmup = time.Minute
	}
	if c.SurpriseRatio <= 1 {
		c.SurpriseRatio = 1.5
	}
	if c.Hold <= 0 {
		c.Hold = 10 * time.Minute
	}
	return c
}

// Point is one step of a load path in requests per second.
type Point struct {
	At    time.Time `json:"at"`
	Point float64   `json:"point"`
	Upper float64   `json:"upper"`
}

// Event is an announced event with the load expected while it lasts.
type Event struct {
	Category   string    `json:"category"`
	Start, End time.Time `json:"-"`
	// Load is the expected load at each step of the event's effect
	// (upper estimate, requests per second), from the event's start to
	// when its effect has passed; empty when the category's effect could
	// not be learned.
	Load []Point `json:"-"`
	// Uplift says how Load was estimated (for the why).
	Uplift string `json:"uplift"`
	// UnderWay is set once the event's own load has rescaled Load: the
	// forecaster's band inside the event is then not used (the event's
	// measured size is the better evidence).
	UnderWay bool `json:"under_way,omitempty"`
}

// Input is what the scaler knows about one service at Now.
type Input struct {
	Service string
	Now     time.Time
	// Current is the replicas the service has (ready and starting);
	// Ready of them serve.
	Current, Ready int
	// Min and Max are the autoscaler's bounds (Max 0: none).
	Min, Max int
	// PerReplicaRPS is a replica's capacity at full utilisation (from
	// Capacity); 0 when not known yet.
	PerReplicaRPS float64
	// Startup is the time a new replica takes to become ready (from Lead).
	Startup time.Duration
	// Forecast is the forecaster's path from Now on (per step, rps); nil
	// when no forecast is available.
	Forecast []Point
	// Events are announced events (their effect may lie beyond the
	// forecast's horizon).
	Events []Event
	// ObservedRPS is the load of the last minute; ExpectedRPS what was
	// expected for it (the upper band the forecast gave, or the event's
	// expected load); NaN or 0 when not known.
	ObservedRPS, ExpectedRPS float64
}

// Decision is the floor for one service with its reasons.
type Decision struct {
	Service string `json:"service"`
	// Floor is the minimum replicas to hold now (0: no floor, the
	// autoscaler's own minimum applies).
	Floor int `json:"floor"`
	// Need is the replicas the plan asks for before the Max cap.
	Need int `json:"need"`
	// NeededAt is the time whose load sets the floor; ReadyBy when its
	// capacity must be ready (NeededAt, or Margin before an event).
	NeededAt time.Time `json:"needed_at,omitzero"`
	ReadyBy  time.Time `json:"ready_by,omitzero"`
	// Until is when the floor lapses unless renewed.
	Until time.Time `json:"until,omitzero"`
	// Lead is Startup + Warmup, the look-ahead of the decision.
	Lead time.Duration `json:"lead"`
	// LoadRPS is the load the floor was sized for; PerReplicaRPS the
	// capacity used; Utilization the planned utilisation.
	LoadRPS       float64 `json:"load_rps"`
	PerReplicaRPS float64 `json:"per_replica_rps"`
	Utilization   float64 `json:"utilization"`
	// Driver is what set the floor: "event", "forecast", or "" (none).
	Driver string `json:"driver,omitempty"`
	// Event is the announced event behind the floor, if any.
	Event *Event `json:"event,omitempty"`
	// Deferred is set when load runs far above what was expected: the
	// reactive autoscaler leads (the floor still never lowers capacity).
	Deferred bool `json:"deferred,omitempty"`
	// Capped is set when Need exceeded Max.
	Capped bool `json:"capped,omitempty"`
	// Why explains the decision in one paragraph.
	Why string `json:"why"`
}

// Decide computes the floor for one service (see the package doc for the
// rule).
func Decide(in Input, cfg Config) Decision {
	c := cfg.WithDefaults()
	d := Decision{Service: in.Service, Lead: in.Startup + c.Warmup, PerReplicaRPS: in.PerReplicaRPS}
	var why []string
	if in.ExpectedRPS > 0 && in.ObservedRPS > c.SurpriseRatio*in.ExpectedRPS {
		d.Deferred = true
		why = append(why, fmt.Sprintf("load %.4g rps is %.1f× what was expected (%.4g rps): an unforecast surge; the reactive autoscaler leads on measured utilisation and the floor never lowers capacity",
			in.ObservedRPS, in.ObservedRPS/in.ExpectedRPS, in.ExpectedRPS))
	}
	if !(in.PerReplicaRPS > 0) {
		why = append(why, "no floor: a replica's capacity is not learned yet (it needs minutes of traffic with the replicas between idle and saturated)")
		d.Why = strings.Join(why, "; ")
		return d
	}
	horizon := in.Now.Add(d.Lead)
	uForecast := c.TargetUtilization * (1 + c.Tolerance)
	uEvent := math.Max(c.EventUtilization, c.TargetUtilization)
	best := 0.0
	consider := func(load, u float64, at, readyBy time.Time, driver string, ev *Event) {
		if !(load > 0) || math.IsInf(load, 0) {
			return
		}
		need := load / (in.PerReplicaRPS * u)
		if need > best {
			best = need
			d.LoadRPS, d.Utilization, d.NeededAt, d.ReadyBy, d.Driver, d.Event = load, u, at, readyBy, driver, ev
		}
	}
	inEvent := func(t time.Time) bool {
		for i := range in.Events {
			e := &in.Events[i]
			if len(e.Load) > 0 && !t.Before(e.Start) && !t.After(e.Load[len(e.Load)-1].At) {
				return true
			}
		}
		return false
	}
	for _, p := range in.Forecast {
		if p.At.Before(in.Now) || p.At.After(horizon) || inEvent(p.At) {
			continue
		}
		consider(p.Point, uForecast, p.At, p.At, "forecast", nil)
	}
	// An event's load is needed Margin before it happens; its opening
	// (the rise and the first Margin of it, where the peak of a flash
	// sale lies) is needed Margin before it starts. Inside the event the
	// forecaster's upper band counts too (it may have learned the event
	// better than the uplift), until the event's own load has been seen.
	readyBy := func(e *Event, at time.Time) time.Time {
		if at.Before(e.Start.Add(c.Margin)) {
			return e.Start.Add(-c.Margin)
		}
		return at.Add(-c.Margin)
	}
	for i := range in.Events {
		e := &in.Events[i]
		if len(e.Load) == 0 {
			continue
		}
		last := e.Load[len(e.Load)-1].At
		u := uEvent
		if e.UnderWay {
			// Its size is measured now: plan it like any measured load,
			// no more than the autoscaler would hold itself.
			u = uForecast
		}
		for _, p := range e.Load {
			ready := readyBy(e, p.At)
			if p.At.Before(in.Now) || ready.After(horizon) {
				continue
			}
			if ready.Before(in.Now) {
				ready = in.Now
			}
			consider(p.Upper, u, p.At, ready, "event", e)
		}
		if e.UnderWay {
			continue
		}
		for _, p := range in.Forecast {
			if p.At.Before(e.Start) || p.At.Before(in.Now) || p.At.After(last) {
				continue
			}
			ready := readyBy(e, p.At)
			if ready.After(horizon) {
				continue
			}
			if ready.Before(in.Now) {
				ready = in.Now
			}
			consider(p.Upper, uEvent, p.At, ready, "event", e)
		}
	}
	evHorizon := horizon.Add(c.Margin)
	for i := range in.Events {
		if e := &in.Events[i]; len(e.Load) == 0 && !e.Start.Before(in.Now) && !e.Start.After(evHorizon) {
			why = append(why, fmt.Sprintf("announced %s at %s: %s; no capacity planned for it", e.Category, e.Start.UTC().Format("15:04"), e.Uplift))
		}
	}
	d.Need = int(math.Ceil(best - 1e-9))
	d.Floor = d.Need
	if d.Floor > 0 && d.Floor <= in.Min {
		d.Floor = 0 // the autoscaler's own minimum holds as much: a floor there changes nothing
	}
	if in.Max > 0 && d.Floor > in.Max {
		d.Floor, d.Capped = in.Max, true
	}
	if d.Floor > 0 {
		d.Until = in.Now.Add(c.Hold)
		if d.Event != nil && len(d.Event.Load) > 0 {
			if end := d.Event.Load[len(d.Event.Load)-1].At; end.After(d.Until) {
				d.Until = end
			}
		}
	}
	switch {
	case d.Floor == 0 && d.Need == 0:
		why = append(why, "no floor: nothing in the forecast or the calendar within the look-ahead needs capacity")
	case d.Floor == 0:
		why = append(why, fmt.Sprintf("no floor: %d replicas for %.4g rps at %s are within the autoscaler's minimum %d", d.Need, d.LoadRPS, d.NeededAt.UTC().Format("15:04"), in.Min))
	default:
		s := fmt.Sprintf("floor %d replicas (%d now) = ⌈%.4g rps / (%.4g rps per replica × %.2g utilisation)⌉", d.Floor, in.Current,
			d.LoadRPS, in.PerReplicaRPS, d.Utilization)
		if d.Driver == "event" {
			s += fmt.Sprintf(" for announced %s at %s (%s), ready by %s, %s before it", d.Event.Category, d.Event.Start.UTC().Format("15:04"),
				d.Event.Uplift, d.ReadyBy.UTC().Format("15:04"), c.Margin)
		} else {
			s += fmt.Sprintf(" for the forecast point at %s", d.NeededAt.UTC().Format("15:04"))
		}
		s += fmt.Sprintf("; look-ahead %s = startup %s + warm-up %s", d.Lead.Round(time.Second), in.Startup.Round(time.Second), c.Warmup)
		if d.Capped {
			s += fmt.Sprintf("; capped at the autoscaler's max %d (needs %d): expect shedding", in.Max, d.Need)
		}
		why = append(why, s)
	}
	d.Why = strings.Join(why, "; ")
	return d
}
