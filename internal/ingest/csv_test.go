package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

func TestCSVNASATrace(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	f, err := os.Open(filepath.Join("..", "..", "testdata", "traces", "nasa_http_1995_07_1min.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ny, _ := time.LoadLocation("America/New_York")
	o := CSVOptions{Service: "nasa", Metric: "requests", Time: TimeFormat{Loc: ny}, Name: "nasa.csv"}
	rep, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error { return ImportCSV(ctx, run, f, o, false) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inserted != 38880 || rep.Quarantined != 0 {
		t.Fatalf("report: %s", rep)
	}
	key := store.SeriesKey{Service: "nasa", Metric: "requests"}
	pts := points(t, st, key, store.Minute)
	if len(pts) != 38880 {
		t.Fatalf("%d minute points", len(pts))
	}
	// 1995-07-01 00:00 EDT is 04:00 UTC; the first value is 42.
	if !pts[0].Time().Equal(time.Date(1995, 7, 1, 4, 0, 0, 0, time.UTC)) || pts[0].V != 42 {
		t.Errorf("first point %v = %v", pts[0].Time(), pts[0].V)
	}
	// The retention (measured from the series' newest point) compacts the
	// raw minutes of this 27-day trace into 1-minute buckets: lossless for
	// 1-minute data, and a re-import is recognized as unchanged.
	if _, err := st.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if len(points(t, st, key, store.Minute)) != 38880 {
		t.Fatal("compaction lost minute buckets")
	}
	f.Seek(0, 0)
	rep, err = runSource(t, st, "csv", func(ctx context.Context, run *Run) error { return ImportCSV(ctx, run, f, o, false) })
	if err != nil || rep.Unchanged != 38880 || rep.Quarantined != 0 {
		t.Fatalf("re-import after compaction: %s %v", rep, err)
	}
}

func TestCSVEveryValidationReason(t *testing.T) {
	st := testStore(t)
	ny, _ := time.LoadLocation("America/New_York")
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ingest", "trace-bad.csv"))
	if err != nil {
		t.Fatal(err)
	}
	o := CSVOptions{Service: "shop", Metric: "requests", TimeCol: "ts", ValueCol: "v", Time: TimeFormat{Loc: ny}, Name: "trace-bad.csv"}
	rep, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error {
		return ImportCSV(ctx, run, strings.NewReader(string(body)), o, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.Reason{
		"trace-bad.csv:3":  store.ReasonMissingField,
		"trace-bad.csv:4":  store.ReasonNotANumber,
		"trace-bad.csv:5":  store.ReasonNotFinite,
		"trace-bad.csv:6":  store.ReasonNegative,
		"trace-bad.csv:8":  store.ReasonDuplicateTimestamp,
		"trace-bad.csv:9":  store.ReasonOutOfOrder,
		"trace-bad.csv:10": store.ReasonUnparseableTime,
		"trace-bad.csv:11": store.ReasonAmbiguousTime, // skipped hour
		"trace-bad.csv:13": store.ReasonMissingField,  // empty time
		"trace-bad.csv:14": store.ReasonMissingField,  // one field
		"trace-bad.csv:15": store.ReasonNotFinite,     // 1e400
		"trace-bad.csv:16": store.ReasonAmbiguousTime, // repeated hour
		"trace-bad.csv:18": store.ReasonMalformed,     // bare quote
		"trace-bad.csv:19": store.ReasonMalformed,     // unterminated quote
	}
	q := quarantined(t, st)
	for loc, reason := range want {
		if q[loc].Reason != reason {
			t.Errorf("%s: quarantined as %q (%s), want %s", loc, q[loc].Reason, q[loc].Detail, reason)
		}
	}
	if len(q) != len(want) || rep.Quarantined != int64(len(want)) || rep.Inserted != 4 {
		t.Errorf("report %s; quarantined %d rows", rep, len(q))
	}
	if d := q["trace-bad.csv:3"].Detail; !strings.Contains(d, "gap") {
		t.Errorf("an empty value says it stays a gap: %q", d)
	}
	if d := q["trace-bad.csv:16"].Detail; !strings.Contains(d, "twice") {
		t.Errorf("repeated hour: %q", d)
	}
	// The gap stays a gap: minutes 01:01–01:04 have no point.
	pts := points(t, st, store.SeriesKey{Service: "shop", Metric: "requests"}, store.Raw)
	var got []string
	for _, p := range pts {
		got = append(got, p.Time().In(ny).Format("01-02 15:04"))
	}
	if strings.Join(got, " ") != "03-08 01:00 03-08 01:05 03-08 03:00 11-01 03:00" {
		t.Errorf("stored %v", got)
	}
	// --allow-negative accepts the negative row.
	st2 := testStore(t)
	rep, _ = runSource(t, st2, "csv", func(ctx context.Context, run *Run) error {
		return ImportCSV(ctx, run, strings.NewReader(string(body)), o, true)
	})
	if rep.Reasons[store.ReasonNegative] != 0 || rep.Inserted != 5 {
		t.Errorf("allow negative: %s", rep)
	}
}

func TestCSVHeaderAndZoneErrors(t *testing.T) {
	st := testStore(t)
	for _, tc := range []struct {
		body string
		o    CSVOptions
		want string
	}{
		{"", CSVOptions{}, "empty file"},
		{"a,b\n1,2\n", CSVOptions{}, `no time column "timestamp"`},
		{"timestamp,a,b\n", CSVOptions{}, "pass --value-col"},
		{"timestamp,a\n", CSVOptions{ValueCol: "z"}, `no value column "z"`},
		{"timestamp,requests\n2026-01-01 00:00:00,1\n", CSVOptions{}, "pass --tz"},
	} {
		tc.o.Service, tc.o.Metric = "s", "m"
		_, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error {
			return ImportCSV(ctx, run, strings.NewReader(tc.body), tc.o, false)
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
	_, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error {
		return ImportCSV(ctx, run, strings.NewReader("timestamp,requests\n2026-01-01 00:00:00,1\n"), CSVOptions{Service: "s", Metric: "m"}, false)
	})
	if !errors.Is(err, ErrNeedZone) {
		t.Errorf("naive times without --tz: %v", err)
	}
	// Times with an offset need no --tz; a BOM and spaces are tolerated;
	// Unix seconds and milliseconds are detected.
	rep, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error {
		return ImportCSV(ctx, run, strings.NewReader("\ufeff timestamp , v\n2026-01-01T00:00:00Z, 1\n1767225660,2\n1767225720000,3\n1767225780.5,4\n"), CSVOptions{Service: "s", Metric: "m"}, false)
	})
	if err != nil || rep.Inserted != 4 {
		t.Fatalf("%s %v", rep, err)
	}
	pts := points(t, st, store.SeriesKey{Service: "s", Metric: "m"}, store.Raw)
	if len(pts) != 4 || pts[3].T != 1767225780500 {
		t.Errorf("points %v", pts)
	}
}

func TestTimeFormats(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tc := range []struct {
		in     string
		tf     TimeFormat
		want   string
		reason store.Reason
	}{
		{"2026-11-27T10:00:00+01:00", TimeFormat{}, "2026-11-27T09:00:00Z", ""},
		{"2026-11-27 10:00:00.25", TimeFormat{Loc: paris}, "2026-11-27T09:00:00.25Z", ""},
		{"2023-11-16 18:15:46.6805900", TimeFormat{Loc: time.UTC}, "2023-11-16T18:15:46.68059Z", ""},
		{"2026-11-27", TimeFormat{Loc: time.UTC}, "2026-11-27T00:00:00Z", ""},
		{"27/Nov/2026:10:00:00 +0000", TimeFormat{}, "2026-11-27T10:00:00Z", ""},
		{"27/11/2026 10:00", TimeFormat{Layout: "02/01/2006 15:04", Loc: time.UTC}, "2026-11-27T10:00:00Z", ""},
		{"27/11/2026", TimeFormat{Layout: "02/01/2006 15:04", Loc: time.UTC}, "", store.ReasonUnparseableTime},
		{"1767225600", TimeFormat{Layout: "unix"}, "2026-01-01T00:00:00Z", ""},
		{"1767225600000", TimeFormat{Layout: "unix_ms"}, "2026-01-01T00:00:00Z", ""},
		{"NaN", TimeFormat{Layout: "unix"}, "", store.ReasonUnparseableTime},
		{"12345", TimeFormat{}, "", store.ReasonUnparseableTime},
		{"2026-11-27 10:00:00", TimeFormat{}, "", store.ReasonAmbiguousTime},
		{"", TimeFormat{}, "", store.ReasonMissingField},
	} {
		got, p := tc.tf.parse(tc.in)
		switch {
		case tc.reason != "" && (p == nil || p.Reason != tc.reason):
			t.Errorf("%q: %v %+v, want %s", tc.in, got, p, tc.reason)
		case tc.reason == "" && (p != nil || !got.Equal(utc(tc.want))):
			t.Errorf("%q: %v %+v, want %s", tc.in, got.UTC(), p, tc.want)
		}
	}
}

func TestCSVAllRowsBad(t *testing.T) {
	// More bad rows than the run buffers: they are written as they come and
	// all of them are counted and stored.
	st := testStore(t)
	var b strings.Builder
	b.WriteString("timestamp,v\n")
	for i := range 12_000 {
		b.WriteString(time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339) + ",n/a\n")
	}
	rep, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error {
		return ImportCSV(ctx, run, strings.NewReader(b.String()), CSVOptions{Service: "s", Metric: "m"}, false)
	})
	if err != nil || rep.Quarantined != 12_000 || rep.Reasons[store.ReasonNotANumber] != 12_000 {
		t.Fatalf("%s %v", rep, err)
	}
	counts, _ := st.QuarantineCounts(context.Background())
	if len(counts) != 1 || counts[0].Count != 12_000 {
		t.Fatalf("stored %+v", counts)
	}
}
