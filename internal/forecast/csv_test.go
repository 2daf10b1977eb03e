package forecast

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestReadCSVRegularKeepsGapsAsGaps(t *testing.T) {
	in := "timestamp,requests\n" +
		"2024-01-01 00:00:00,5\n" +
		"2024-01-01 00:05:00,\n" + // empty value: a gap
		"2024-01-01 00:10:00,7\n" +
		// 00:15 missing: a gap
		"2024-01-01 00:20:00,0\n" // a real zero
	s, info, err := ReadCSV(strings.NewReader(in), "t.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Step != 5*time.Minute || s.Len() != 5 || info.Arrivals {
		t.Fatalf("step %v len %d arrivals %v", s.Step, s.Len(), info.Arrivals)
	}
	want := []float64{5, math.NaN(), 7, math.NaN(), 0}
	for i, w := range want {
		if got := s.Values[i]; !(got == w || (math.IsNaN(got) && math.IsNaN(w))) {
			t.Errorf("value %d = %v, want %v", i, got, w)
		}
	}
	if info.GapSteps != 2 || info.EmptyValues != 1 || s.Gaps() != 2 {
		t.Errorf("gap steps %d empty %d gaps %d", info.GapSteps, info.EmptyValues, s.Gaps())
	}
}

func TestReadCSVErrorsNameTheLine(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"duplicate", "t,v\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,1\n2024-01-01 00:01:00,2\n", "t.csv:4: column \"t\": duplicated timestamp"},
		{"decreasing", "t,v\n2024-01-01 00:02:00,1\n2024-01-01 00:03:00,1\n2024-01-01 00:01:00,2\n2024-01-01 00:04:00,2\n", "t.csv:4: column \"t\": decreasing"},
		{"off grid", "t,v\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,1\n2024-01-01 00:02:00,1\n2024-01-01 00:02:30,2\n2024-01-01 00:03:30,2\n", "off the 1m0s grid"},
		{"negative", "t,v\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,-3\n", "t.csv:3: column \"v\": expected a finite number >= 0"},
		{"bad time", "t,v\n2024-01-01 00:00:00,1\nyesterday,2\n", "t.csv:3: column \"t\""},
		{"columns", "t,v\n2024-01-01 00:00:00,1,9\n", "t.csv:2: 3 columns, expected 2"},
		{"no value col", "t\n2024-01-01 00:00:00\n2024-01-01 00:01:00\n", "only a time column"},
		{"empty", "", "empty file"},
		// Empty lines are skipped by the reader: the line is still the
		// file's (it was the row index + 2).
		{"after blank lines", "t,v\n\n2024-01-01 00:00:00,1\n\n\n2024-01-01 00:01:00,-3\n", "t.csv:6: column \"v\""},
		// A stray quote: named where it opens (it was the last line, where
		// the reader gave up), not a row that swallows the ones after it.
		{"stray quote", "t,v\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,\"2\n2024-01-01 00:02:00,3\n2024-01-01 00:03:00,4\n", "t.csv:3: a quoted field opened on this line is not closed"},
		{"quote over lines", "t,v\n2024-01-01 00:00:00,\"1\n2024-01-01 00:01:00,2\"\n2024-01-01 00:02:00,3\n", "t.csv:2: a quoted field runs over to line 3"},
		// A typo in the year of the last row: a century of gaps before.
		{"typo year last", "t,v\n2024-01-01 00:00:00,1\n2024-01-01 01:00:00,2\n2024-01-01 02:00:00,3\n2124-01-01 03:00:00,4\n", "t.csv:5: column \"t\": the time jumps from 2024-01-01 02:00:00 to 2124-01-01 03:00:00"},
		{"typo year first", "t,v\n1924-01-01 00:00:00,1\n2024-01-01 01:00:00,2\n2024-01-01 02:00:00,3\n2024-01-01 03:00:00,4\n", "t.csv:3: column \"t\": the time jumps from 1924"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ReadCSV(strings.NewReader(c.in), "t.csv", CSVOptions{Mode: "series"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	_, _, err := ReadCSV(strings.NewReader("a,b\n2024-01-01,1\n2024-01-02,2\n"), "t.csv", CSVOptions{ValueCol: "c"})
	if err == nil || !strings.Contains(err.Error(), "--value-col") {
		t.Fatalf("unknown column: %v", err)
	}
}

func TestReadCSVTypoYearInArrivals(t *testing.T) {
	in := "t\n2024-01-01 00:00:01\n2024-01-01 00:00:02\n2024-01-01 00:10:00\n2024-01-01 00:20:00\n2224-01-01 00:20:00\n"
	_, _, err := ReadCSV(strings.NewReader(in), "a.csv", CSVOptions{Mode: "arrivals", Step: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "a.csv:6: column \"t\": the time jumps") {
		t.Fatalf("err = %v", err)
	}
	// A long pause between two sessions of data is not a typo.
	in = "t,v\n2024-01-01 00:00:00,1\n2024-01-01 01:00:00,2\n2024-01-01 02:00:00,3\n2024-01-03 02:00:00,4\n2024-01-03 03:00:00,4\n"
	if _, _, err := ReadCSV(strings.NewReader(in), "p.csv", CSVOptions{Mode: "series"}); err != nil {
		t.Fatalf("a pause: %v", err)
	}
}

func TestReadCSVAggregatesArrivals(t *testing.T) {
	var b strings.Builder
	b.WriteString("TIMESTAMP,Tokens\n")
	// Arrivals from 10:00:05 to 10:00:44: 10 s buckets 10:00:00 (partial,
	// dropped), 10:00:10, 10:00:20, 10:00:30, 10:00:40 (partial, dropped).
	times := []string{"05.1", "07.9", "11.0", "12.5", "19.9", "25.0", "31.0", "32.0", "33.0", "39.99", "44.0"}
	for _, s := range times {
		b.WriteString("2023-11-16 10:00:" + s + ",10\n")
	}
	s, info, err := ReadCSV(strings.NewReader(b.String()), "a.csv", CSVOptions{Mode: "arrivals", Step: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Arrivals || s.Step != 10*time.Second || !s.Start.Equal(time.Date(2023, 11, 16, 10, 0, 10, 0, time.UTC)) {
		t.Fatalf("arrivals %v step %v start %v", info.Arrivals, s.Step, s.Start)
	}
	want := []float64{3, 1, 4}
	if len(s.Values) != len(want) {
		t.Fatalf("values %v, want %v", s.Values, want)
	}
	for i := range want {
		if s.Values[i] != want[i] {
			t.Fatalf("values %v, want %v", s.Values, want)
		}
	}
	// With a value column the step's value is the sum.
	s, _, err = ReadCSV(strings.NewReader(b.String()), "a.csv", CSVOptions{Mode: "arrivals", Step: 10 * time.Second, ValueCol: "Tokens"})
	if err != nil || s.Values[0] != 30 {
		t.Fatalf("sum: %v %v", s.Values, err)
	}
	if !strings.Contains(info.Aggregation, "count of arrivals") {
		t.Errorf("aggregation note %q", info.Aggregation)
	}
}

func TestReadCSVDetectsArrivalsAndTimeColumn(t *testing.T) {
	f, err := os.Open("testdata/azure_llm_conv_arrivals_head.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, info, err := ReadCSV(f, "azure", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Arrivals || info.TimeCol != "TIMESTAMP" || info.ValueCol != "" {
		t.Fatalf("info %+v", info)
	}
	var n float64
	for _, v := range s.Values {
		n += v
	}
	if n == 0 || n >= float64(info.Rows) {
		t.Errorf("%v arrivals counted from %d rows (edges are dropped)", n, info.Rows)
	}
}

func TestValuesJSONRoundTripsGaps(t *testing.T) {
	v := Values{1, math.NaN(), 2.5}
	b, err := v.MarshalJSON()
	if err != nil || string(b) != "[1,null,2.5]" {
		t.Fatalf("%s %v", b, err)
	}
	var w Values
	if err := w.UnmarshalJSON(b); err != nil || len(w) != 3 || !math.IsNaN(w[1]) || w[2] != 2.5 {
		t.Fatalf("%v %v", w, err)
	}
}

// FuzzReadCSV: no input makes the loader panic or hang; what it accepts
// is a valid series.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("timestamp,requests\n1995-07-01 00:00:00,42\n1995-07-01 00:01:00,61\n"))
	f.Add([]byte("t,v\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,\n2024-01-01 00:15:00,3\n"))
	f.Add([]byte("TIMESTAMP,A\n2023-11-16 18:15:46.68,1\n2023-11-16 18:15:50.99,2\n2023-11-16 18:15:51.22,3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		s, _, err := ReadCSV(strings.NewReader(string(data)), "fuzz.csv", CSVOptions{Step: time.Second})
		if err != nil {
			return
		}
		if s.Step <= 0 || len(s.Values) == 0 {
			t.Fatalf("accepted an invalid series: step %v len %d", s.Step, len(s.Values))
		}
		for _, v := range s.Values {
			if math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted value %v", v)
			}
		}
	})
}
