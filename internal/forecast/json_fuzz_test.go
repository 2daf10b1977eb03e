package forecast

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzValuesJSON: the hand-written Values decoder (artifact payloads:
// examples, forecasts) never panics, reads what encoding/json reads as
// the same numbers (null as NaN), and yields no infinity: JSON has none.
func FuzzValuesJSON(f *testing.F) {
	for _, s := range []string{`[1,null,2.5]`, `[]`, `null`, ` [ 1e3 , -0 ]`, `[1 2]`, `[Inf]`, `[NaN]`, `[0x10]`, `[1,]`, `[`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v Values
		err := v.UnmarshalJSON(data)
		if err == nil {
			for _, x := range v {
				if math.IsInf(x, 0) {
					t.Fatalf("%q: infinity accepted", data)
				}
			}
		}
		var ref []*float64
		if json.Unmarshal(data, &ref) != nil || ref == nil {
			return
		}
		if err != nil {
			t.Fatalf("%q: encoding/json reads it, Values does not: %v", data, err)
		}
		if len(v) != len(ref) {
			t.Fatalf("%q: %d values, encoding/json %d", data, len(v), len(ref))
		}
		for i, r := range ref {
			if (r == nil) != math.IsNaN(v[i]) || (r != nil && *r != v[i]) {
				t.Fatalf("%q: value %d is %v, encoding/json %v", data, i, v[i], r)
			}
		}
	})
}

// FuzzMetricsAndTrialJSON: the report decoders never panic and keep their
// null-as-NaN promise.
func FuzzMetricsAndTrialJSON(f *testing.F) {
	f.Add([]byte(`{"mase":null,"smape":0.5,"mae":1,"coverage":0.9,"n":3}`))
	f.Add([]byte(`{"model":"gbdt","number":1,"params":{"lr":0.1},"value":null,"state":"FAIL","seconds":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Metrics
		if m.UnmarshalJSON(data) == nil {
			if b, err := m.MarshalJSON(); err != nil {
				t.Fatalf("%q: re-encode %v", data, err)
			} else if err := new(Metrics).UnmarshalJSON(b); err != nil {
				t.Fatalf("%q → %s: %v", data, b, err)
			}
		}
		var tr Trial
		if tr.UnmarshalJSON(data) == nil {
			if _, err := tr.MarshalJSON(); err != nil {
				t.Fatalf("%q: re-encode %v", data, err)
			}
		}
	})
}
