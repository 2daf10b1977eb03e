package forecast

import (
	"math"
	"time"
)

// periods returns the daily and weekly seasonal periods in steps, or 0
// when a day is not a whole number of steps (or the step is longer than a
// day).
func periods(step time.Duration) (day, week int) {
	if step <= 0 || step > 24*time.Hour || (24*time.Hour)%step != 0 {
		return 0, 0
	}
	day = int(24 * time.Hour / step)
	if day < 2 {
		return 0, 0
	}
	return day, 7 * day
}

// chooseSeasonalPeriod picks the seasonal-naive period, "same time last
// day" or "same time last week", by in-sample mean absolute error over
// the training steps [0, trainEnd), both compared on the same steps. Too
// little history for a weekly lag leaves the daily one; too little for a
// daily one (an hour-long log) leaves the naive forecast, period 1.
func chooseSeasonalPeriod(y []float64, trainEnd, day, week int) int {
	if day == 0 || trainEnd < 2*day {
		return 1
	}
	if trainEnd < week+day {
		return day
	}
	var ed, ew float64
	for s := week; s < trainEnd; s++ {
		a, b, c := y[s], y[s-day], y[s-week]
		if math.IsNaN(a) || math.IsNaN(b) || math.IsNaN(c) {
			continue
		}
		ed += math.Abs(a - b)
		ew += math.Abs(a - c)
	}
	if ew < ed {
		return week
	}
	return day
}

// inSampleMAE is the mean absolute error of the seasonal-naive forecast
// with period m over the training steps: the denominator of MASE
// (Hyndman & Koehler 2006, "Another look at measures of forecast
// accuracy", eq. for the scaled error q_t). It is never zero: a constant
// series falls back to its mean level, then to 1.
func inSampleMAE(y []float64, trainEnd, m int) float64 {
	var sum float64
	n := 0
	for s := m; s < trainEnd; s++ {
		if math.IsNaN(y[s]) || math.IsNaN(y[s-m]) {
			continue
		}
		sum += math.Abs(y[s] - y[s-m])
		n++
	}
	if n > 0 && sum > 0 {
		return sum / float64(n)
	}
	if lvl := meanAbs(y[:trainEnd]); lvl > 0 {
		return lvl
	}
	return 1
}

// seasonalNaive forecasts step t+h from origin t (data known up to and
// including t) as the value one period (or more, until h fits and a value
// is known) earlier. When every candidate is a gap it falls back to the
// last known value, then to NaN.
func seasonalNaive(y []float64, t, h, m int) float64 {
	k := (h + m - 1) / m
	for tries := 0; tries < 4; tries++ {
		i := t + h - (k+tries)*m
		if i < 0 {
			break
		}
		if !math.IsNaN(y[i]) {
			return y[i]
		}
	}
	return lastKnown(y, t, 64)
}

// lastKnown is the most recent non-gap value at or before t, looking back
// at most maxBack steps; NaN if none.
func lastKnown(y []float64, t, maxBack int) float64 {
	for i := t; i >= 0 && i >= t-maxBack; i-- {
		if !math.IsNaN(y[i]) {
			return y[i]
		}
	}
	return math.NaN()
}

func meanAbs(y []float64) float64 {
	var s float64
	n := 0
	for _, v := range y {
		if !math.IsNaN(v) {
			s += math.Abs(v)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}
