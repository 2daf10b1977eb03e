// Package forecast holds lbsys's load forecasters: features, models,
// tuning and rolling-origin evaluation. It is pure (deptest checks it): no
// I/O beyond the readers it is given, no wall clock, no global random
// source. Every random choice comes from the seed in Options, so the same
// seed and data give the same model and forecast bit for bit (threads
// included: parallel work is split so sums keep their order).
//
// # Data
//
// A Series is regular: Values[i] is the load of the step starting at
// Start+i·Step, and a gap is NaN, never zero. ReadCSV reads trace files
// strictly (a duplicated, decreasing or off-grid timestamp is an error
// naming its line) and aggregates per-request arrival logs to a step.
// Inputs beyond the series are optional (Exogenous: upstream services,
// transactions, funnel stages, incidents, change windows; Events from
// calendars); an absent input leaves its features missing.
//
// # Models
//
// Every model forecasts leads 1..Hmax from an origin (data known up to
// and including it):
//
//   - seasonal naive: same time yesterday or last week, chosen by
//     in-sample error (the baseline, and MASE's scale);
//   - ETS: additive Holt-Winters with a damped trend;
//   - GBDT: histogram gradient-boosted trees, one global model over all
//     series and leads (the lead is a feature), with a quantile twin for
//     the upper band;
//   - LSTM: a small recurrent network over the recent anomaly (load minus
//     the seasonal profile) with one output per lead;
//   - the ensemble: their combination with non-negative weights summing
//     to one, fitted per horizon on validation windows (stacking), and an
//     upper band calibrated by split conformal prediction.
//
// Trees and the LSTM predict the deviation from a reference forecast (the
// seasonal profile at the target shifted to today's level), scaled by the
// series' mean, so one model serves series of any size.
//
// # Use
//
//	tr, _ := forecast.Prepare(inputs, forecast.Options{Horizons: []int{30, 120}, Seed: 1})
//	tu, _ := forecast.Tune(ctx, tr, inputs, forecast.TuneOptions{}) // ctx deadline = budget
//	tr.Options.GBDT, tr.Options.LSTM = tu.GBDT, tu.LSTM
//	m, _ := forecast.Train(ctx, tr, inputs)
//	ev, _ := m.Evaluate(inputs, forecast.Test) // MASE, sMAPE, coverage per model and horizon
//	fc, _ := m.Forecast(inputs)                // from the last step: point, upper band, drivers
//
// Each series is split in time: training (first 65%), validation (15%:
// tuning, ensemble weights, band) and test (last 20%: never seen before
// evaluation). internal/pipeline runs these steps as TFX-style components.
package forecast
