package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/store"
)

// ForecastKind is the store artifact kind of one series' pushed forecast.
const ForecastKind = "Forecast"

// ForecastMetric names the store series holding a horizon's point
// forecast of metric ("requests_forecast_15m"); upper adds "_upper" for
// the upper band.
func ForecastMetric(metric, horizon string, upper bool) string {
	m := metric + "_forecast_" + horizon
	if upper {
		m += "_upper"
	}
	return m
}

// StoreSink delivers pushed forecasts into the store, next to the load
// they forecast. Per series and horizon it writes two store series of the
// same service and endpoint: ForecastMetric(metric, horizon, false) with
// the point forecast and ForecastMetric(…, true) with the upper band (a
// later forecast overwrites the steps it covers again). Per series it
// stores a ForecastKind artifact named after the series (payload: the
// forecast with its drivers, properties: origin, step, model, peaks and
// top drivers per horizon), linked in the lineage to the store series it
// was made from, the model, the Pusher's forecasts artifact and the
// series holding its points.
//
// The Pusher calls Deliver only with blessed forecasts, before recording
// them as pushed, with the run, model and forecasts artifact they come
// from.
type StoreSink struct {
	Store *store.Store
	// Source maps example series to the store series they came from.
	Source *StoreSource

	mu        sync.Mutex
	delivered []Delivered
}

// Delivered says what the sink wrote for one series.
type Delivered struct {
	Series   string `json:"series"`
	Artifact int64  `json:"artifact"`
	// Keys are the store series written: point, then upper, per horizon.
	Keys []store.SeriesKey `json:"keys"`
}

// Delivered returns what the sink has written since it was made.
func (k *StoreSink) Delivered() []Delivered {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Delivered(nil), k.delivered...)
}

// forecastDoc is the payload of a ForecastKind artifact.
type forecastDoc struct {
	Service       string   `json:"service"`
	Endpoint      string   `json:"endpoint,omitempty"`
	Metric        string   `json:"metric"`
	HorizonLabels []string `json:"horizon_labels"`
	RunID         string   `json:"run_id"`
	ModelID       int64    `json:"model_id"`
	forecast.Forecast
}

// Deliver implements Sink.
func (k *StoreSink) Deliver(ctx context.Context, d Delivery) error {
	if k.Store == nil || k.Source == nil {
		return errors.New("store sink: needs a store and its source")
	}
	f := d.Forecasts
	metric := k.Source.metric()
	for _, fc := range f.Forecasts {
		o, ok := k.Source.Origin(fc.Series)
		if !ok {
			return fmt.Errorf("store sink: series %q was not read from the store", fc.Series)
		}
		p := Pushed{Series: fc.Series, RunID: d.RunID, ModelID: d.ModelID, ForecastID: d.ForecastsID}
		var err error
		var samples []store.Sample
		var keys []store.SeriesKey
		var labels []string
		props := map[string]string{"service": o.Service, "metric": metric, "origin": fc.Origin.UTC().Format(time.RFC3339),
			"step": fc.Step.String(), "run": p.RunID, "model": strconv.FormatInt(p.ModelID, 10)}
		if o.Endpoint != "" {
			props["endpoint"] = o.Endpoint
		}
		for hi, hf := range fc.Horizons {
			label := strconv.Itoa(hf.Steps) + "steps"
			if hi < len(f.HorizonLabels) {
				label = f.HorizonLabels[hi]
			}
			labels = append(labels, label)
			var ids [2]int64
			for j, upper := range []bool{false, true} {
				key := store.SeriesKey{Service: o.Service, Endpoint: o.Endpoint, Metric: ForecastMetric(metric, label, upper)}
				if ids[j], err = k.Store.EnsureSeries(ctx, key, "pipeline"); err != nil {
					return err
				}
				keys = append(keys, key)
			}
			peak, upperPeak := math.Inf(-1), math.Inf(-1)
			for i, ts := range hf.Times {
				t, err := time.Parse(time.RFC3339, ts)
				if err != nil {
					return fmt.Errorf("store sink: %s: time %q: %w", fc.Series, ts, err)
				}
				for j, v := range []float64{hf.Point[i], hf.Upper[i]} {
					if !math.IsNaN(v) && !math.IsInf(v, 0) {
						samples = append(samples, store.Sample{Series: ids[j], T: t.UnixMilli(), V: v})
					}
				}
				peak, upperPeak = math.Max(peak, hf.Point[i]), math.Max(upperPeak, hf.Upper[i])
			}
			if len(hf.Times) > 0 {
				props["peak_"+label] = strconv.FormatFloat(peak, 'g', 6, 64)
				props["upper_peak_"+label] = strconv.FormatFloat(upperPeak, 'g', 6, 64)
			}
			var ds []string
			for _, d := range hf.Drivers[:min(3, len(hf.Drivers))] {
				ds = append(ds, fmt.Sprintf("%s:%+.4g", d.Feature, d.Effect))
			}
			props["drivers_"+label] = strings.Join(ds, " ")
		}
		props["horizons"] = strings.Join(labels, ",")
		if _, err := k.Store.WritePoints(ctx, samples); err != nil {
			return fmt.Errorf("store sink: %s: %w", fc.Series, err)
		}
		payload, err := json.Marshal(forecastDoc{Service: o.Service, Endpoint: o.Endpoint, Metric: metric, HorizonLabels: labels,
			RunID: p.RunID, ModelID: p.ModelID, Forecast: fc})
		if err != nil {
			return fmt.Errorf("store sink: %s: %w", fc.Series, err)
		}
		sum := sha256.Sum256(payload)
		id, _, err := k.Store.PutArtifact(ctx, store.Artifact{Kind: ForecastKind, Name: fc.Series, Digest: hex.EncodeToString(sum[:]),
			Producer: "Pusher", RunID: p.RunID, Props: props, Payload: payload})
		if err != nil {
			return err
		}
		ref := store.ArtifactRef(id)
		edges := []store.LineageEdge{
			{From: store.ArtifactRef(p.ForecastID), To: ref, Kind: EdgeContains, RunID: p.RunID},
			{From: store.ArtifactRef(p.ModelID), To: ref, Kind: EdgeModel, RunID: p.RunID},
		}
		for _, r := range o.Refs {
			edges = append(edges, store.LineageEdge{From: r, To: ref, Kind: EdgeInput, RunID: p.RunID})
		}
		for _, key := range keys {
			sid, err := k.Store.SeriesID(ctx, key)
			if err != nil {
				return err
			}
			edges = append(edges, store.LineageEdge{From: ref, To: store.SeriesRef(sid), Kind: EdgeForecast, RunID: p.RunID})
		}
		if err := k.Store.AddLineage(ctx, edges...); err != nil {
			return err
		}
		k.mu.Lock()
		k.delivered = append(k.delivered, Delivered{Series: fc.Series, Artifact: id, Keys: keys})
		k.mu.Unlock()
	}
	return nil
}
