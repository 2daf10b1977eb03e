package forecast

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/mat"
)

// Exogenous are inputs beyond the series itself. Each may be absent (a CSV
// alone has only the series); the features of an absent input are missing
// values, which the trees route on their own learned branch. Series here
// must share the target's step; they may start at another step of the
// same grid.
type Exogenous struct {
	// Upstream are the loads of the services that call this one (the CMDB
	// dependency graph). Service coupling: the load they send is
	// upstream × a fan-out learned on the training window.
	Upstream []*Series `json:"upstream,omitempty"`
	// Transactions is the checkout/payment rate; transaction velocity is
	// its recent level and derivative.
	Transactions *Series `json:"transactions,omitempty"`
	// Funnel are the sessions per funnel stage (browse, product, cart,
	// checkout, …). Their distribution over stages, reduced by an SVD
	// fitted on the training window, is a leading indicator of checkout
	// load.
	Funnel []*Series `json:"funnel,omitempty"`
	// Incidents is the number of open ITIL incidents per step.
	Incidents *Series `json:"incidents,omitempty"`
	// Changes are ITIL change windows (in-window flag and time to the next
	// one at the target time).
	Changes []Event `json:"changes,omitempty"`
}

// Input is one series to forecast with what is known about it.
type Input struct {
	Series *Series `json:"series"`
	// Events are calendar events (sales, premieres, holidays from a
	// calendar) expanded over the series' window and its horizon.
	Events []Event    `json:"events,omitempty"`
	Exo    *Exogenous `json:"exo,omitempty"`
}

// Layout fixes the feature columns shared by every series of a model, so
// one global GBDT can learn across series.
type Layout struct {
	EventCats []string `json:"event_cats,omitempty"`
	Upstream  bool     `json:"upstream,omitempty"`
	Tx        bool     `json:"tx,omitempty"`
	Funnel    int      `json:"funnel,omitempty"` // SVD components
	Incidents bool     `json:"incidents,omitempty"`
	Changes   bool     `json:"changes,omitempty"`
}

// baseFeatures are the columns every model has, in order.
var baseFeatures = []string{
	"lead_hours",  // how far ahead the target is
	"tod",         // target hour of day (fractional)
	"dow",         // target weekday, 0 = Sunday
	"holiday",     // target day is a public holiday
	"level",       // recent level / scale
	"anomaly",     // recent level minus the seasonal profile / scale
	"y0",          // last value minus level
	"y1",          // one step earlier
	"y2",          // two steps earlier
	"mom_long",    // longer-window mean minus level (momentum)
	"std_long",    // longer-window standard deviation
	"prof_delta",  // profile at the target minus profile now
	"sd1",         // same time yesterday, smoothed, minus the reference
	"sd1_raw",     // same time yesterday
	"sd2",         // same time two days ago, smoothed
	"sw1",         // same time last week, smoothed
	"sw1_raw",     // same time last week
	"sw2",         // same time two weeks ago, smoothed
	"sw_mean",     // mean of the smoothed weekly lags 1–4
	"sw_mean_raw", // mean of the weekly lags 1–4
	"dev_day",     // level now minus level at this time yesterday
	"dev_week",    // level now minus level at this time last week
}

// Names returns the feature names of the layout, in column order.
func (l *Layout) Names() []string {
	out := append([]string(nil), baseFeatures...)
	for _, c := range l.EventCats {
		out = append(out, "event_"+c+"_in", "event_"+c+"_until_h", "event_"+c+"_since_h")
	}
	if l.Upstream {
		out = append(out, "coupling", "coupling_delta")
	}
	if l.Tx {
		out = append(out, "tx_rate", "tx_velocity")
	}
	for i := 0; i < l.Funnel; i++ {
		out = append(out, fmt.Sprintf("funnel_svd%d", i+1))
	}
	if l.Incidents {
		out = append(out, "incidents_open")
	}
	if l.Changes {
		out = append(out, "change_in", "change_until_h")
	}
	return out
}

// SeriesSpec is what Transform learned about one series on its training
// window: seasonal periods, scale, profile, splits and the parameters of
// the exogenous features. It travels with the model, so a pushed model
// can be scored again on new data.
type SeriesSpec struct {
	Name  string        `json:"name"`
	Start time.Time     `json:"start"`
	Step  time.Duration `json:"step"`
	N     int           `json:"n"`
	// Day and Week are the seasonal periods in steps (0: none).
	Day  int `json:"day"`
	Week int `json:"week"`
	// Period is the seasonal-naive period chosen by in-sample error (Day,
	// Week, or 1 for the naive forecast).
	Period int `json:"period"`
	// MASEScale is the in-sample seasonal-naive MAE (Hyndman & Koehler).
	MASEScale float64 `json:"mase_scale"`
	// Scale normalises every feature and target: the mean |y| of the
	// training window, so one model serves series of any size.
	Scale float64 `json:"scale"`
	// RefWin is the window (steps) of the recent level; Smooth the
	// half-window of smoothed seasonal lags; LongWin the window of the
	// momentum and spread features.
	RefWin  int `json:"ref_win"`
	Smooth  int `json:"smooth"`
	LongWin int `json:"long_win"`
	// Profile is the mean load per slot of the week (or day) on the
	// training window, smoothed; slot of step i is (ProfileSlot0+i) mod
	// len(Profile).
	Profile     Values `json:"profile"`
	ProfileSlot int    `json:"profile_slot0"`
	// TrainEnd and ValidEnd split the steps: [0,TrainEnd) trains the
	// models, [TrainEnd,ValidEnd) tunes them and fits the ensemble,
	// [ValidEnd,N) is the held-out test.
	TrainEnd int `json:"train_end"`
	ValidEnd int `json:"valid_end"`
	// Fanout is the learned load per unit of each upstream's load.
	Fanout []float64 `json:"fanout,omitempty"`
	// TxScale normalises the transaction rate.
	TxScale float64 `json:"tx_scale,omitempty"`
	// FunnelMean and FunnelBasis project a funnel distribution onto its
	// principal directions (rows of the basis).
	FunnelMean  []float64   `json:"funnel_mean,omitempty"`
	FunnelBasis [][]float64 `json:"funnel_basis,omitempty"`
	// IncScale normalises the open-incident count.
	IncScale float64 `json:"inc_scale,omitempty"`
	// Counts is set when every training value is a whole number (requests
	// or departures per step): the ensemble then reports the count
	// median near zero.
	Counts bool `json:"counts,omitempty"`
}

// durSteps converts a duration to whole steps, at least lo.
func durSteps(d, step time.Duration, lo int) int {
	return max(lo, int(math.Round(float64(d)/float64(step))))
}

// newSpec learns a series' spec on [0, trainEnd).
func newSpec(in Input, trainEnd, validEnd int, lay *Layout) (*SeriesSpec, error) {
	s := in.Series
	day, week := periods(s.Step)
	sp := &SeriesSpec{Name: s.Name, Start: s.Start, Step: s.Step, N: s.Len(), Day: day, Week: week,
		TrainEnd: trainEnd, ValidEnd: validEnd,
		RefWin:  durSteps(10*time.Minute, s.Step, 1),
		Smooth:  durSteps(10*time.Minute, s.Step, 0),
		LongWin: durSteps(time.Hour, s.Step, 4),
	}
	y := s.Values
	sp.Period = chooseSeasonalPeriod(y, trainEnd, day, week)
	sp.MASEScale = inSampleMAE(y, trainEnd, sp.Period)
	sp.Scale = meanAbs(y[:trainEnd])
	if !(sp.Scale > 0) {
		sp.Scale = 1
	}
	sp.fitProfile(y[:trainEnd])
	sp.Counts = true
	for _, v := range y[:trainEnd] {
		if !math.IsNaN(v) && v != math.Trunc(v) {
			sp.Counts = false
			break
		}
	}
	if err := sp.fitExo(in, lay); err != nil {
		return nil, err
	}
	return sp, nil
}

// fitProfile computes the seasonal profile: per slot of the week when the
// training window holds at least two weeks (shrunk toward the daily
// profile, one pseudo-observation), else per slot of the day, else the
// mean; then a circular moving average of ±Smooth slots.
func (sp *SeriesSpec) fitProfile(y []float64) {
	mean := meanKnown(y)
	if math.IsNaN(mean) {
		mean = 0
	}
	if sp.Day == 0 || len(y) < 2*sp.Day {
		sp.Profile, sp.ProfileSlot = Values{mean}, 0
		return
	}
	slot0 := slotOfDay(sp.Start, sp.Step)
	daySum, dayCnt := make([]float64, sp.Day), make([]float64, sp.Day)
	for i, v := range y {
		if !math.IsNaN(v) {
			k := (slot0 + i) % sp.Day
			daySum[k] += v
			dayCnt[k]++
		}
	}
	dayProf := make([]float64, sp.Day)
	for k := range dayProf {
		dayProf[k] = mean
		if dayCnt[k] > 0 {
			dayProf[k] = daySum[k] / dayCnt[k]
		}
	}
	prof := dayProf
	sp.ProfileSlot = slot0
	if len(y) >= 2*sp.Week {
		wslot0 := int(sp.Start.Weekday())*sp.Day + slot0
		wSum, wCnt := make([]float64, sp.Week), make([]float64, sp.Week)
		for i, v := range y {
			if !math.IsNaN(v) {
				k := (wslot0 + i) % sp.Week
				wSum[k] += v
				wCnt[k]++
			}
		}
		prof = make([]float64, sp.Week)
		for k := range prof {
			d := dayProf[k%sp.Day]
			prof[k] = (wSum[k] + d) / (wCnt[k] + 1)
		}
		sp.ProfileSlot = wslot0
	}
	sp.Profile = Values(circularSmooth(prof, sp.Smooth))
}

func circularSmooth(x []float64, k int) []float64 {
	if k <= 0 {
		return append([]float64(nil), x...)
	}
	n := len(x)
	out := make([]float64, n)
	for i := range x {
		var s float64
		for j := -k; j <= k; j++ {
			s += x[((i+j)%n+n)%n]
		}
		out[i] = s / float64(2*k+1)
	}
	return out
}

func meanKnown(y []float64) float64 {
	var s float64
	n := 0
	for _, v := range y {
		if !math.IsNaN(v) {
			s += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// slotOfDay is the index of t's step within its day.
func slotOfDay(t time.Time, step time.Duration) int {
	since := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond())
	return int(since / step)
}

// exoAligned returns x's values indexed by the target's steps (NaN
// outside x) for steps [0, n).
func exoAligned(target *Series, x *Series, n int) ([]float64, error) {
	if x.Step != target.Step {
		return nil, fmt.Errorf("exogenous series %q has step %v, the target %q has %v; resample it first", x.Name, x.Step, target.Name, target.Step)
	}
	d := x.Start.Sub(target.Start)
	if d%target.Step != 0 {
		return nil, fmt.Errorf("exogenous series %q starts at %s, off the grid of %q", x.Name, x.Start.Format(time.DateTime), target.Name)
	}
	off := int(d / target.Step)
	out := make([]float64, n)
	for i := range out {
		j := i - off
		if j >= 0 && j < len(x.Values) {
			out[i] = x.Values[j]
		} else {
			out[i] = math.NaN()
		}
	}
	return out, nil
}

// fitExo learns the exogenous feature parameters on the training window.
func (sp *SeriesSpec) fitExo(in Input, lay *Layout) error {
	x := in.Exo
	if x == nil {
		return nil
	}
	s := in.Series
	te := sp.TrainEnd
	if len(x.Upstream) > 0 && lay.Upstream {
		// Fan-out by least squares of the load on the upstream loads over
		// the training steps where all are known, clamped at 0.
		k := len(x.Upstream)
		cols := make([][]float64, k)
		for j, u := range x.Upstream {
			a, err := exoAligned(s, u, te)
			if err != nil {
				return err
			}
			cols[j] = a
		}
		var rows []int
		for i := 0; i < te; i++ {
			ok := !math.IsNaN(s.Values[i])
			for j := 0; j < k && ok; j++ {
				ok = !math.IsNaN(cols[j][i])
			}
			if ok {
				rows = append(rows, i)
			}
		}
		sp.Fanout = make([]float64, k)
		if len(rows) > k {
			A := mat.NewDense(len(rows), k, nil)
			b := mat.NewVecDense(len(rows), nil)
			for r, i := range rows {
				for j := 0; j < k; j++ {
					A.Set(r, j, cols[j][i])
				}
				b.SetVec(r, s.Values[i])
			}
			var f mat.VecDense
			if err := f.SolveVec(A, b); err == nil {
				for j := 0; j < k; j++ {
					sp.Fanout[j] = math.Max(0, f.AtVec(j))
				}
			}
		}
	}
	if x.Transactions != nil && lay.Tx {
		a, err := exoAligned(s, x.Transactions, te)
		if err != nil {
			return err
		}
		sp.TxScale = meanAbs(a)
		if !(sp.TxScale > 0) {
			sp.TxScale = 1
		}
	}
	if len(x.Funnel) >= 2 && lay.Funnel > 0 {
		dist, err := funnelDist(s, x.Funnel, te, sp.RefWin)
		if err != nil {
			return err
		}
		st := len(x.Funnel)
		var rows [][]float64
		for i := 0; i < te; i += max(1, te/4000) {
			if dist[i] != nil {
				rows = append(rows, dist[i])
			}
		}
		sp.FunnelMean = make([]float64, st)
		if len(rows) > st {
			for _, r := range rows {
				for j, v := range r {
					sp.FunnelMean[j] += v / float64(len(rows))
				}
			}
			X := mat.NewDense(len(rows), st, nil)
			for r, row := range rows {
				for j, v := range row {
					X.Set(r, j, v-sp.FunnelMean[j])
				}
			}
			var svd mat.SVD
			if svd.Factorize(X, mat.SVDThin) {
				var v mat.Dense
				svd.VTo(&v)
				for c := 0; c < lay.Funnel && c < st; c++ {
					basis := make([]float64, st)
					for j := range basis {
						basis[j] = v.At(j, c)
					}
					// Fix the sign so the same data gives the same basis.
					if basis[0] < 0 {
						for j := range basis {
							basis[j] = -basis[j]
						}
					}
					sp.FunnelBasis = append(sp.FunnelBasis, basis)
				}
			}
		}
	}
	if x.Incidents != nil && lay.Incidents {
		a, err := exoAligned(s, x.Incidents, te)
		if err != nil {
			return err
		}
		sp.IncScale = math.Max(1, meanAbs(a))
	}
	return nil
}

// funnelDist returns, per step, the share of sessions in each funnel
// stage over the last win steps (nil where no session is known).
func funnelDist(s *Series, stages []*Series, n, win int) ([][]float64, error) {
	pres := make([]prefix, len(stages))
	for j, st := range stages {
		a, err := exoAligned(s, st, n)
		if err != nil {
			return nil, err
		}
		pres[j] = newPrefix(a)
	}
	out := make([][]float64, n)
	for i := 0; i < n; i++ {
		d := make([]float64, len(stages))
		var tot float64
		for j := range stages {
			m := pres[j].mean(i-win+1, i)
			if math.IsNaN(m) {
				m = 0
			}
			d[j] = m
			tot += m
		}
		if tot <= 0 {
			continue
		}
		for j := range d {
			d[j] /= tot
		}
		out[i] = d
	}
	return out, nil
}

// builder computes feature rows for one series. All arrays cover steps
// [0, n+hmax) so forecasts past the end of the data get calendar and
// event features.
type builder struct {
	sp    *SeriesSpec
	lay   *Layout
	y     []float64
	pre   prefix
	sq    prefix // prefix of squares, for the spread
	prof  []float64
	ppre  prefix
	tod   []float32
	dow   []int8
	hol   []bool
	ev    [][]float32 // per step: 3 values per event category
	exo   [][]float64 // per step: exogenous columns, in layout order
	nf    int
	hmax  int
	names []string
}

func newBuilder(sp *SeriesSpec, lay *Layout, in Input, hol Holidays, hmax int) (*builder, error) {
	s := in.Series
	n := s.Len()
	total := n + hmax
	b := &builder{sp: sp, lay: lay, y: s.Values, hmax: hmax}
	b.pre = newPrefix(s.Values)
	sq := make([]float64, n)
	for i, v := range s.Values {
		sq[i] = v * v
	}
	b.sq = newPrefix(sq)
	b.prof = make([]float64, total)
	P := len(sp.Profile)
	for i := range b.prof {
		b.prof[i] = sp.Profile[(sp.ProfileSlot+i)%P]
	}
	b.ppre = newPrefix(b.prof)
	b.tod = make([]float32, total)
	b.dow = make([]int8, total)
	b.hol = make([]bool, total)
	day := -1
	var holToday bool
	for i := 0; i < total; i++ {
		t := s.Time(i)
		b.tod[i] = float32(t.Hour()) + float32(t.Minute())/60 + float32(t.Second())/3600
		b.dow[i] = int8(t.Weekday())
		if d := t.YearDay() + 400*t.Year(); d != day {
			day = d
			y, m, dd := t.Date()
			holToday = hol.IsHoliday(y, m, dd)
		}
		b.hol[i] = holToday
	}
	if len(lay.EventCats) > 0 {
		idx := newEventIndex(in.Events)
		b.ev = make([][]float32, total)
		flat := make([]float32, total*3*len(lay.EventCats))
		for i := 0; i < total; i++ {
			row := flat[i*3*len(lay.EventCats) : (i+1)*3*len(lay.EventCats)]
			for c := range row {
				row[c] = float32(math.NaN())
			}
			if idx != nil {
				t := s.Time(i)
				for c, cat := range lay.EventCats {
					k := indexOf(idx.cats, cat)
					if k < 0 {
						row[3*c], row[3*c+1], row[3*c+2] = 0, eventHorizonCap, eventHorizonCap
						continue
					}
					in, until, since := idx.features(k, t)
					row[3*c], row[3*c+1], row[3*c+2] = float32(in), float32(until), float32(since)
				}
			}
			b.ev[i] = row
		}
	}
	if err := b.buildExo(in, total); err != nil {
		return nil, err
	}
	b.names = lay.Names()
	b.nf = len(b.names)
	return b, nil
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// exoWidth is the number of exogenous columns of the layout.
func (l *Layout) exoWidth() int {
	w := l.Funnel
	if l.Upstream {
		w += 2
	}
	if l.Tx {
		w += 2
	}
	if l.Incidents {
		w++
	}
	if l.Changes {
		w += 2
	}
	return w
}

// buildExo precomputes the exogenous columns per step. Origin-time
// columns (coupling, velocity, funnel, incidents) are known at the
// origin; change-window columns describe the target time.
func (b *builder) buildExo(in Input, total int) error {
	w := b.lay.exoWidth()
	if w == 0 {
		return nil
	}
	sp, s, x := b.sp, in.Series, in.Exo
	n := s.Len()
	b.exo = make([][]float64, total)
	flat := make([]float64, total*w)
	for i := range flat {
		flat[i] = math.NaN()
	}
	for i := range b.exo {
		b.exo[i] = flat[i*w : (i+1)*w]
	}
	if x == nil {
		return nil
	}
	r := sp.RefWin
	col := 0
	if b.lay.Upstream {
		if len(x.Upstream) > 0 && len(sp.Fanout) == len(x.Upstream) {
			pres := make([]prefix, len(x.Upstream))
			for j, u := range x.Upstream {
				a, err := exoAligned(s, u, n)
				if err != nil {
					return err
				}
				pres[j] = newPrefix(a)
			}
			for i := 0; i < n; i++ {
				var now, before float64
				ok := true
				for j := range pres {
					a, c := pres[j].mean(i-r+1, i), pres[j].mean(i-2*r+1, i-r)
					if math.IsNaN(a) || math.IsNaN(c) {
						ok = false
						break
					}
					now += sp.Fanout[j] * a
					before += sp.Fanout[j] * c
				}
				if ok {
					b.exo[i][col] = now / sp.Scale
					b.exo[i][col+1] = (now - before) / sp.Scale
				}
			}
		}
		col += 2
	}
	if b.lay.Tx {
		if x.Transactions != nil && sp.TxScale > 0 {
			a, err := exoAligned(s, x.Transactions, n)
			if err != nil {
				return err
			}
			p := newPrefix(a)
			for i := 0; i < n; i++ {
				now, before := p.mean(i-r+1, i), p.mean(i-2*r+1, i-r)
				b.exo[i][col] = now / sp.TxScale
				b.exo[i][col+1] = (now - before) / sp.TxScale / float64(r)
			}
		}
		col += 2
	}
	if b.lay.Funnel > 0 {
		if len(x.Funnel) >= 2 && len(sp.FunnelBasis) > 0 {
			dist, err := funnelDist(s, x.Funnel, n, r)
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				if dist[i] == nil {
					continue
				}
				for c, basis := range sp.FunnelBasis {
					var e float64
					for j, v := range dist[i] {
						e += (v - sp.FunnelMean[j]) * basis[j]
					}
					b.exo[i][col+c] = e
				}
			}
		}
		col += b.lay.Funnel
	}
	if b.lay.Incidents {
		if x.Incidents != nil {
			a, err := exoAligned(s, x.Incidents, n)
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				b.exo[i][col] = a[i] / math.Max(sp.IncScale, 1)
			}
		}
		col++
	}
	if b.lay.Changes {
		idx := newEventIndex(x.Changes)
		for i := 0; i < total; i++ {
			if idx == nil {
				b.exo[i][col], b.exo[i][col+1] = 0, eventHorizonCap
				continue
			}
			in, until, _ := idx.features(0, s.Time(i))
			b.exo[i][col], b.exo[i][col+1] = in, until
		}
	}
	return nil
}

// level is the mean of the known values over the RefWin steps ending at t.
func (b *builder) level(t int) float64 { return b.pre.mean(t-b.sp.RefWin+1, t) }

// anomaly is the recent level minus the profile over the same steps (0
// when the recent steps are all gaps).
func (b *builder) anomaly(t int) float64 {
	l := b.level(t)
	if math.IsNaN(l) {
		return 0
	}
	return l - b.ppre.mean(t-b.sp.RefWin+1, t)
}

// ref is the reference forecast every model improves on: the seasonal
// profile at the target plus the current anomaly ("the profile, shifted
// to today's level"). Trees and the LSTM predict (y − ref)/scale.
func (b *builder) ref(t, h int) float64 { return b.prof[t+h] + b.anomaly(t) }

// smoothAt is the mean of known values in [i−Smooth, i+Smooth] that are
// known at origin t (the window never reaches past t).
func (b *builder) smoothAt(i, t int) float64 {
	if i < 0 {
		return math.NaN()
	}
	return b.pre.mean(i-b.sp.Smooth, min(i+b.sp.Smooth, t))
}

func (b *builder) at(i int) float64 {
	if i < 0 || i >= len(b.y) {
		return math.NaN()
	}
	return b.y[i]
}

// row writes the features for origin t (data known up to and including
// t) and lead h into dst and returns the reference forecast.
func (b *builder) row(t, h int, dst []float64) float64 {
	sp := b.sp
	sc := sp.Scale
	lvl := b.level(t)
	anom := b.anomaly(t)
	ref := b.prof[t+h] + anom
	target := t + h
	nan := math.NaN()
	dst[0] = float64(h) * sp.Step.Hours()
	dst[1] = float64(b.tod[target])
	dst[2] = float64(b.dow[target])
	dst[3] = 0
	if b.hol[target] {
		dst[3] = 1
	}
	dst[4] = lvl / sc
	dst[5] = anom / sc
	for j := 0; j < 3; j++ {
		dst[6+j] = (b.at(t-j) - lvl) / sc
	}
	L := sp.LongWin
	lm := b.pre.mean(t-L+1, t)
	dst[9] = (lm - lvl) / sc
	if c := b.pre.count(t-L+1, t); c >= 2 {
		m2 := b.sq.mean(t-L+1, t)
		dst[10] = math.Sqrt(math.Max(0, m2-lm*lm)) / sc
	} else {
		dst[10] = nan
	}
	dst[11] = (b.prof[target] - b.ppre.mean(t-sp.RefWin+1, t)) / sc
	// Seasonal lags of the target time, in whole periods that end at or
	// before the origin.
	for k := 12; k <= 21; k++ {
		dst[k] = nan
	}
	if D := sp.Day; D > 0 {
		k := (h + D - 1) / D
		i1 := target - k*D
		dst[12] = (b.smoothAt(i1, t) - ref) / sc
		dst[13] = (b.at(i1) - ref) / sc
		dst[14] = (b.smoothAt(i1-D, t) - ref) / sc
		dst[20] = (lvl - b.pre.mean(t-D-sp.RefWin+1, t-D)) / sc
		if W := sp.Week; W > 0 {
			k := (h + W - 1) / W
			w1 := target - k*W
			dst[15] = (b.smoothAt(w1, t) - ref) / sc
			dst[16] = (b.at(w1) - ref) / sc
			dst[17] = (b.smoothAt(w1-W, t) - ref) / sc
			var sm, rw float64
			var ns, nr int
			for j := 0; j < 4; j++ {
				if v := b.smoothAt(w1-j*W, t); !math.IsNaN(v) {
					sm += v
					ns++
				}
				if v := b.at(w1 - j*W); !math.IsNaN(v) {
					rw += v
					nr++
				}
			}
			if ns > 0 {
				dst[18] = (sm/float64(ns) - ref) / sc
			}
			if nr > 0 {
				dst[19] = (rw/float64(nr) - ref) / sc
			}
			dst[21] = (lvl - b.pre.mean(t-W-sp.RefWin+1, t-W)) / sc
		}
	}
	k := len(baseFeatures)
	if b.ev != nil {
		for _, v := range b.ev[target] {
			dst[k] = float64(v)
			k++
		}
	}
	if b.exo != nil {
		// Origin-time columns come from step t, change columns from the
		// target step.
		w := b.lay.exoWidth()
		chg := 0
		if b.lay.Changes {
			chg = 2
		}
		copy(dst[k:k+w-chg], b.exo[min(t, len(b.y)-1)][:w-chg])
		if chg > 0 {
			copy(dst[k+w-chg:k+w], b.exo[target][w-chg:])
		}
	}
	return ref
}

// lstmInputs is the number of inputs per step of the LSTM.
const lstmInputs = 6

// seq writes the LSTM input sequence for the window of win steps ending
// at t: the anomaly (y − profile)/scale (0 at a gap), a gap flag, and the
// time of day and week as sines and cosines.
func (b *builder) seq(t, win int, dst []float64) {
	for j := 0; j < win; j++ {
		i := t - win + 1 + j
		x := dst[j*lstmInputs : (j+1)*lstmInputs]
		if i < 0 || math.IsNaN(b.y[i]) {
			x[0], x[1] = 0, 1
		} else {
			x[0], x[1] = clamp((b.y[i]-b.prof[i])/b.sp.Scale, -10, 10), 0
		}
		ii := max(i, 0)
		a := 2 * math.Pi * float64(b.tod[ii]) / 24
		w := 2 * math.Pi * (float64(b.dow[ii]) + float64(b.tod[ii])/24) / 7
		x[2], x[3], x[4], x[5] = math.Sin(a), math.Cos(a), math.Sin(w), math.Cos(w)
	}
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
