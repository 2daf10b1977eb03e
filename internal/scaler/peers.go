package scaler

import (
	"math"
	"time"
)

// HoltWinters is the model of the open-source Predictive Horizontal Pod
// Autoscaler (jthomperoo/predictive-horizontal-pod-autoscaler): every
// interval the HPA's replica calculation is stored, additive Holt-Winters
// exponential smoothing (level, trend, a season of Season intervals) is
// run over the stored values, and the autoscaler takes the larger of the
// HPA's own calculation and the model's prediction ("decisionType:
// maximum"). Here the model runs on load (requests per second), which is
// the HPA's replica calculation before its division by per-replica
// capacity and rounding; the caller divides. It knows nothing of
// calendars: it can anticipate only what recurs with the season.
//
// Predict looks LookAhead intervals ahead (the PHPA predicts the next
// interval; looking as far ahead as a replica takes to start is the
// configuration that gives the peer its best chance).
type HoltWinters struct {
	Alpha, Beta, Gamma float64
	// Season is the number of intervals in a season (a day).
	Season int
	// LookAhead is how many intervals ahead Predict looks.
	LookAhead int

	level, trend float64
	seasonal     []float64
	n            int
	ready        bool
}

// FitHoltWinters initialises the model on history (at least two seasons
// are needed) with the smoothing parameters that best predict history
// LookAhead intervals ahead over its last season (a grid search, as the
// PHPA's documentation asks users to tune on their own data), then runs
// the model over the whole history. It returns nil when history is too
// short.
func FitHoltWinters(history []float64, season, lookAhead int) *HoltWinters {
	if season < 2 || len(history) < 2*season+lookAhead+1 {
		return nil
	}
	grid := []float64{0.05, 0.2, 0.5, 0.8}
	var best *HoltWinters
	bestErr := math.Inf(1)
	evalFrom := len(history) - season
	for _, a := range grid {
		for _, b := range []float64{0.01, 0.1} {
			for _, g := range grid {
				h := &HoltWinters{Alpha: a, Beta: b, Gamma: g, Season: season, LookAhead: lookAhead}
				h.init(history)
				var sum float64
				cnt := 0
				// preds[i] is what the model said lookAhead intervals
				// before i, having seen the values before i-lookAhead+1.
				preds := make([]float64, len(history)+lookAhead+1)
				for i := range preds {
					preds[i] = math.NaN()
				}
				for i := 2 * season; i < len(history); i++ {
					if i >= evalFrom && !math.IsNaN(preds[i]) && !math.IsNaN(history[i]) {
						sum += math.Abs(preds[i] - history[i])
						cnt++
					}
					h.Observe(history[i])
					if k := i + max(1, lookAhead); k < len(preds) {
						preds[k] = h.at(max(1, lookAhead))
					}
				}
				if cnt > 0 && sum/float64(cnt) < bestErr {
					bestErr = sum / float64(cnt)
					best = h
				}
			}
		}
	}
	return best
}

// init sets level, trend and season from the first two seasons and runs
// through them (the classic heuristic initialisation).
func (h *HoltWinters) init(x []float64) {
	m := h.Season
	var m1, m2 float64
	for i := 0; i < m; i++ {
		m1 += nz(x[i])
		m2 += nz(x[m+i])
	}
	m1 /= float64(m)
	m2 /= float64(m)
	h.level = m1
	h.trend = (m2 - m1) / float64(m)
	h.seasonal = make([]float64, m)
	for i := 0; i < m; i++ {
		h.seasonal[i] = nz(x[i]) - m1
	}
	h.n = m
	h.ready = true
	for i := m; i < 2*m; i++ {
		h.Observe(x[i])
	}
}

func nz(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	return x
}

// Observe feeds the next interval's value (NaN: a gap, skipped by
// carrying the prediction).
func (h *HoltWinters) Observe(x float64) {
	if !h.ready {
		return
	}
	m := h.Season
	s := h.seasonal[h.n%m]
	if math.IsNaN(x) {
		x = h.level + h.trend + s
	}
	prev := h.level
	h.level = h.Alpha*(x-s) + (1-h.Alpha)*(h.level+h.trend)
	h.trend = h.Beta*(h.level-prev) + (1-h.Beta)*h.trend
	h.seasonal[h.n%m] = h.Gamma*(x-h.level) + (1-h.Gamma)*s
	h.n++
}

func (h *HoltWinters) at(k int) float64 {
	return h.level + float64(k)*h.trend + h.seasonal[(h.n+k-1)%h.Season]
}

// Predict is the largest forecast over the next LookAhead intervals
// (never below 0).
func (h *HoltWinters) Predict() float64 {
	if !h.ready {
		return 0
	}
	best := 0.0
	for k := 1; k <= max(1, h.LookAhead); k++ {
		best = math.Max(best, h.at(k))
	}
	return best
}

// HourlyPlan is the forecast of an AWS-predictive-scaling-style policy
// (EC2 Auto Scaling predictive scaling, as AWS documents it): the load of
// each coming hour is forecast from the last 14 days of the load metric,
// learning daily and weekly patterns, without any calendar; the capacity
// for an hour (forecast ÷ the per-instance target) is scheduled as the
// group's minimum from SchedulingBufferTime before the hour starts, and
// dynamic (target-tracking) scaling keeps running on top.
//
// The forecasting model of the managed service is not public; this one
// follows its documented inputs and outputs: hourly means of the last
// Days days, the forecast for an hour being the mean of the same hour of
// day over those days times the weekday's factor (the mean of that
// weekday over the window, over the mean of every day).
type HourlyPlan struct {
	// Days of history used (default 14).
	Days int
	// Buffer is the scheduling buffer time (default 5m).
	Buffer time.Duration

	start time.Time
	hours []float64 // forecast per hour from start
}

// NewHourlyPlan forecasts the hours [from, from+hours) from per-step
// history ending just before from (step divides an hour). NaN values are
// ignored.
func NewHourlyPlan(history []float64, histStart time.Time, step time.Duration, from time.Time, hours int, days int) *HourlyPlan {
	if days <= 0 {
		days = 14
	}
	p := &HourlyPlan{Days: days, Buffer: 5 * time.Minute, start: from.Truncate(time.Hour)}
	perHour := int(time.Hour / step)
	if perHour < 1 {
		perHour = 1
	}
	// Hourly means over the window.
	var hodSum, hodN [24]float64
	var dowSum, dowN [7]float64
	total, totalN := 0.0, 0.0
	windowStart := from.Add(-time.Duration(days) * 24 * time.Hour)
	for i := 0; i+perHour <= len(history); i += perHour {
		t := histStart.Add(time.Duration(i) * step)
		if t.Before(windowStart) || !t.Before(from) {
			continue
		}
		var s float64
		n := 0
		for j := i; j < i+perHour; j++ {
			if !math.IsNaN(history[j]) {
				s += history[j]
				n++
			}
		}
		if n == 0 {
			continue
		}
		m := s / float64(n)
		hodSum[t.Hour()] += m
		hodN[t.Hour()]++
		dowSum[t.Weekday()] += m
		dowN[t.Weekday()]++
		total += m
		totalN++
	}
	mean := 0.0
	if totalN > 0 {
		mean = total / totalN
	}
	for h := 0; h < hours; h++ {
		t := p.start.Add(time.Duration(h) * time.Hour)
		f := math.NaN()
		if hodN[t.Hour()] > 0 {
			f = hodSum[t.Hour()] / hodN[t.Hour()]
			if dowN[t.Weekday()] > 0 && mean > 0 {
				f *= (dowSum[t.Weekday()] / dowN[t.Weekday()]) / mean
			}
		}
		p.hours = append(p.hours, f)
	}
	return p
}

// LoadAt is the forecast load scheduled at t: the forecast of the hour
// that starts within Buffer of t (the capacity is launched early), or of
// t's own hour; NaN outside the plan.
func (p *HourlyPlan) LoadAt(t time.Time) float64 {
	if p == nil {
		return math.NaN()
	}
	at := t.Add(p.Buffer)
	i := int(at.Sub(p.start) / time.Hour)
	j := int(t.Sub(p.start) / time.Hour)
	v := math.NaN()
	for _, k := range []int{i, j} {
		if k >= 0 && k < len(p.hours) && !math.IsNaN(p.hours[k]) {
			if math.IsNaN(v) || p.hours[k] > v {
				v = p.hours[k]
			}
		}
	}
	return v
}
