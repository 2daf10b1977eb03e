package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	// A trace is history: its series is an archive, kept whole by the
	// retention (which counts back from the clock, so a window would
	// delete 1995 at once).
	if _, err := st.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(points(t, st, key, store.Raw)); n != 38880 {
		t.Fatalf("compaction of an archive series left %d raw points", n)
	}
	f.Seek(0, 0)
	rep, err = runSource(t, st, "csv", func(ctx context.Context, run *Run) error { return ImportCSV(ctx, run, f, o, false) })
	if err != nil || rep.Unchanged != 38880 || rep.Quarantined != 0 {
		t.Fatalf("re-import: %s %v", rep, err)
	}

	// As a window series in a store whose clock is just after the trace,
	// the retention compacts the raw minutes older than 48 h into 1-minute
	// buckets: lossless for 1-minute data, and a re-import is recognized
	// as unchanged.
	end := pts[len(pts)-1].Time().Add(time.Minute)
	st2, err := store.Open(ctx, filepath.Join(t.TempDir(), "w.db"), store.Options{Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	o.Retention = store.RetainWindow
	f.Seek(0, 0)
	if rep, err := runSource(t, st2, "csv", func(ctx context.Context, run *Run) error { return ImportCSV(ctx, run, f, o, false) }); err != nil || rep.Inserted != 38880 {
		t.Fatalf("window import: %s %v", rep, err)
	}
	if _, err := st2.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(points(t, st2, key, store.Raw)); n != 48*60 {
		t.Fatalf("%d raw points after compaction, want the last 48 h", n)
	}
	if len(points(t, st2, key, store.Minute)) != 38880 {
		t.Fatal("compaction lost minute buckets")
	}
	f.Seek(0, 0)
	rep, err = runSource(t, st2, "csv", func(ctx context.Context, run *Run) error { return ImportCSV(ctx, run, f, o, false) })
	if err != nil || rep.Unchanged != 38880 || rep.Quarantined != 0 {
		t.Fatalf("re-import after compaction: %s %v", rep, err)
	}
}

// TestCSVTypoYearIsRefused is issue #13 item 6: a week of history, then a
// CSV with one row whose year is 2126. The row is quarantined as
// future_time (reported with its line), never stored, and the run's
// compaction keeps the week: 48 h of raw points, every minute and every
// hour. Before, the row became the series' newest point, the retention
// counted back from it and the week was gone from raw data and both
// rollups.
func TestCSVTypoYearIsRefused(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "s.db"), store.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	week := now.Add(-7 * 24 * time.Hour)
	var hist strings.Builder
	hist.WriteString("timestamp,requests\n")
	for at := week; at.Before(now.Add(-time.Hour)); at = at.Add(time.Minute) {
		fmt.Fprintf(&hist, "%s,%d\n", at.Format(time.RFC3339), at.Minute())
	}
	o := CSVOptions{Service: "checkout", Metric: "requests", Name: "week.csv", Retention: store.RetainWindow}
	if rep, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error {
		return ImportCSV(ctx, run, strings.NewReader(hist.String()), o, false)
	}); err != nil || rep.Quarantined != 0 {
		t.Fatalf("history: %s %v", rep, err)
	}
	// The last hour, with the year of one row mistyped, and a row an hour
	// ahead of the clock (a zone mistake: within the day allowed).
	var last strings.Builder
	last.WriteString("timestamp,requests\n")
	for at := now.Add(-time.Hour); at.Before(now); at = at.Add(time.Minute) {
		s := at.Format(time.RFC3339)
		if at.Minute() == 30 {
			s = strings.Replace(s, "2026", "2126", 1)
		}
		fmt.Fprintf(&last, "%s,%d\n", s, at.Minute())
	}
	fmt.Fprintf(&last, "%s,1\n", now.Add(time.Hour).Format(time.RFC3339))
	o.Name = "last.csv"
	var rep Report
	run, _ := Begin(ctx, st, "csv", "test")
	rep, err = run.Finish(ctx, ImportCSV(ctx, run, strings.NewReader(last.String()), o, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	first := rep.First[store.ReasonFutureTime]
	if rep.Inserted != 60 || rep.Quarantined != 1 || rep.Reasons[store.ReasonFutureTime] != 1 ||
		first.Location != "last.csv:32" || !strings.Contains(first.Detail, "2126-12-06T11:30:00Z") || !strings.Contains(first.Detail, "36524 days ahead") {
		t.Fatalf("report %s, first %+v", rep, first)
	}
	key := store.SeriesKey{Service: "checkout", Metric: "requests"}
	raw, minute := points(t, st, key, store.Raw), points(t, st, key, store.Minute)
	hour := points(t, st, key, store.Hour)
	// Every minute of the week but the mistyped one, and the minute an hour
	// ahead; its hour too.
	if len(raw) != 48*60 || len(minute) != 7*24*60 || len(hour) != 7*24+1 {
		t.Fatalf("after compaction: raw %d, 1m %d, 1h %d", len(raw), len(minute), len(hour))
	}
	ser, _ := st.ListSeries(ctx, store.SeriesFilter{Service: "checkout"})
	if len(ser) != 1 || !ser[0].Last.Equal(now.Add(time.Hour)) {
		t.Errorf("the series' newest point is %v, want %v", ser[0].Last, now.Add(time.Hour))
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
		"trace-bad.csv:19": store.ReasonMalformed,     // unterminated quote: this line only
	}
	q := quarantined(t, st)
	for loc, reason := range want {
		if q[loc].Reason != reason {
			t.Errorf("%s: quarantined as %q (%s), want %s", loc, q[loc].Reason, q[loc].Detail, reason)
		}
	}
	// Line 20, after the unterminated quote, is a valid row and is stored.
	if len(q) != len(want) || rep.Quarantined != int64(len(want)) || rep.Inserted != 5 {
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
	if strings.Join(got, " ") != "03-08 01:00 03-08 01:05 03-08 03:00 11-01 03:00 11-01 05:00" {
		t.Errorf("stored %v", got)
	}
	// --allow-negative accepts the negative row.
	st2 := testStore(t)
	rep, _ = runSource(t, st2, "csv", func(ctx context.Context, run *Run) error {
		return ImportCSV(ctx, run, strings.NewReader(string(body)), o, true)
	})
	if rep.Reasons[store.ReasonNegative] != 0 || rep.Inserted != 6 {
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

// TestCSVStrayQuoteCostsOneRow is issue #13 item 13: one stray quote in a
// 1,000-row trace lost the 960 valid rows after it (encoding/csv reads on
// to the next quote) and reported "1 quarantined". Each line is a row: the
// broken one is quarantined, with its line number, and nothing else.
func TestCSVStrayQuoteCostsOneRow(t *testing.T) {
	for _, tc := range []struct {
		name, bad string
	}{
		{"unterminated", `"40`},
		{"bare", `4"0`},
		{"text after closing quote", `"4"0`},
		{"unterminated time", `"2026-01-01T00:39:00Z,40`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := testStore(t)
			var b strings.Builder
			b.WriteString("timestamp,requests\r\n")
			for i := range 1000 {
				at := time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC).Format(time.RFC3339)
				v := fmt.Sprint(i)
				switch i {
				case 39:
					if strings.HasPrefix(tc.bad, `"2026`) {
						fmt.Fprintf(&b, "%s\r\n", tc.bad)
						continue
					}
					v = tc.bad
				case 500:
					// Quoting done right, with a doubled quote and spaces.
					at, v = `"`+at+`"`, ` "5""00" `
				}
				fmt.Fprintf(&b, "%s,%s\r\n", at, v)
			}
			rep, err := runSource(t, st, "csv", func(ctx context.Context, run *Run) error {
				return ImportCSV(ctx, run, strings.NewReader(b.String()), CSVOptions{Service: "s", Metric: "m", Name: "t.csv"}, false)
			})
			if err != nil {
				t.Fatal(err)
			}
			// Line 41 is the row of minute 39; the row of minute 500 is
			// "5\"00": quoted right, but not a number.
			q := quarantined(t, st)
			if rep.Inserted != 998 || rep.Quarantined != 2 || q["t.csv:41"].Reason != store.ReasonMalformed ||
				q["t.csv:502"].Reason != store.ReasonNotANumber || !strings.Contains(q["t.csv:502"].Detail, `5\"00`) {
				t.Fatalf("%s; quarantined %+v", rep, q)
			}
			if d := q["t.csv:41"].Detail; !strings.Contains(d, "quote") || q["t.csv:41"].Raw == "" {
				t.Errorf("detail %q raw %q", d, q["t.csv:41"].Raw)
			}
			if n := len(points(t, st, store.SeriesKey{Service: "s", Metric: "m"}, store.Raw)); n != 998 {
				t.Errorf("%d points stored", n)
			}
		})
	}
}

func TestCSVLineSplitting(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		problem string
	}{
		{`a,b`, []string{"a", "b"}, ""},
		{`a,,b,`, []string{"a", "", "b", ""}, ""},
		{`"a,b",c`, []string{"a,b", "c"}, ""},
		{` "a""b" , c`, []string{`a"b`, " c"}, ""},
		{`""`, []string{""}, ""},
		{`"a`, nil, "not closed"},
		{`a"b`, nil, "inside an unquoted field"},
		{`"a"b`, nil, "after the closing quote"},
		{`x,"a""`, nil, "field 2: the quote opened at column 3"},
	} {
		var c csvLines
		got, problem := c.split(tc.in)
		if (tc.problem == "") != (problem == "") || !strings.Contains(problem, tc.problem) || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q %q, want %q %q", tc.in, got, problem, tc.want, tc.problem)
		}
	}
	// A line longer than the bound is one problem, and the next line is
	// read normally.
	body := "timestamp,v\n" + strings.Repeat("x", maxCSVLine+10) + "\n2026-01-01T00:00:00Z,1\n\n"
	var rows []CSVRow
	var problems []Problem
	err := ParseCSV(strings.NewReader(body), CSVOptions{Name: "l.csv"}, func(r CSVRow) error { rows = append(rows, r); return nil },
		func(p Problem) { problems = append(problems, p) })
	if err != nil || len(rows) != 1 || rows[0].Line != 3 || len(problems) != 1 || problems[0].Location != "l.csv:2" ||
		len(problems[0].Raw) > 300 {
		t.Fatalf("rows %+v problems %+v err %v", rows, problems, err)
	}
	// A header with a broken quote is an error naming the line.
	if err := ParseCSV(strings.NewReader("\n\"timestamp,v\n"), CSVOptions{Name: "h.csv"}, nil, nil); err == nil || !strings.Contains(err.Error(), "h.csv:2: header") {
		t.Errorf("header error %v", err)
	}
}
