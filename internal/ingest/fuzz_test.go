package ingest

// Fuzz targets for every parser that reads outside input. Run one with,
// for example:
//
//	go test ./internal/ingest -run '^$' -fuzz FuzzParseICS -fuzztime 30s
//
// Without -fuzz they run their seeds as ordinary tests.

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

func seedFile(f *testing.F, name string) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ingest", name))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func checkProblem(t *testing.T, p Problem) {
	t.Helper()
	if p.Reason == "" || p.Location == "" {
		t.Fatalf("problem without reason or location: %+v", p)
	}
}

// FuzzParseCSV: no input panics; every non-empty line after the header is
// either one row or one problem (a broken line costs itself only: the
// count of quarantined rows is the count of rows lost), on its own line.
func FuzzParseCSV(f *testing.F) {
	seedFile(f, "trace-bad.csv")
	f.Add([]byte("timestamp,requests\n1995-07-01 00:00:00,42\n1995-07-01 00:01:00,\n"))
	f.Add([]byte("\ufefftimestamp,v\n1767225600,1\n1767225600000,2\n\"2026-01-01T00:00:00Z\",\"3\"\n"))
	f.Add([]byte("timestamp,v\n2026-10-25 02:30:00,1\n"))
	f.Add([]byte("timestamp,v\r\n2026-01-01T00:00:00Z,\"1\r\n2026-01-01T00:01:00Z,2\"\r\n\r\n2026-01-01T00:02:00Z, \"3\"\"\" \r\n"))
	ny, _ := time.LoadLocation("America/New_York")
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, problems := 0, 0
		seen := map[int]bool{}
		err := ParseCSV(bytes.NewReader(data), CSVOptions{TimeCol: "timestamp", Time: TimeFormat{Loc: ny}, Name: "f.csv"},
			func(r CSVRow) error {
				rows++
				if r.Time.IsZero() || r.Line < 2 || seen[r.Line] {
					t.Fatalf("bad row %+v", r)
				}
				seen[r.Line] = true
				return nil
			}, func(p Problem) {
				checkProblem(t, p)
				problems++
				var line int
				if _, err := fmt.Sscanf(strings.TrimPrefix(p.Location, "f.csv:"), "%d", &line); err != nil || line < 2 || seen[line] {
					t.Fatalf("problem %+v: not one line of its own", p)
				}
				seen[line] = true
			})
		if err != nil {
			if rows > 0 && !strings.Contains(err.Error(), "f.csv") {
				t.Fatalf("error without location: %v", err)
			}
			return
		}
		// The oracle: lines as the reader cuts them (\n, a \r before it
		// dropped, a BOM on the first line), empty ones skipped, the first
		// non-empty one the header.
		lines := 0
		for i, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSuffix(l, "\r")
			if i == 0 {
				l = strings.TrimPrefix(l, "\ufeff")
			}
			if l != "" {
				lines++
			}
		}
		if rows+problems != lines-1 {
			t.Fatalf("%d rows and %d problems from %d lines after the header", rows, problems, lines-1)
		}
	})
}

// FuzzTimeFormat: the time parsers never panic; what they detect is a
// real date, and a refusal says why.
func FuzzTimeFormat(f *testing.F) {
	for _, s := range []string{"2026-11-27T10:00:00+01:00", "2026-11-27 10:00:00.25", "27/Nov/2026:10:00:00 +0000", "1767225600",
		"1767225600000", "1767225780.5", "2026-10-25 02:30:00", "", "1e400", "99999999999999"} {
		f.Add(s, "")
	}
	f.Add("27/11/2026 10:00", "02/01/2006 15:04")
	f.Add("1767225600", "unix")
	f.Add("NaN", "unix_ms")
	paris, _ := time.LoadLocation("Europe/Paris")
	f.Fuzz(func(t *testing.T, s, layout string) {
		for _, loc := range []*time.Location{nil, time.UTC, paris} {
			got, p := TimeFormat{Layout: layout, Loc: loc}.parse(s)
			if p != nil {
				if p.Reason == "" || p.Detail == "" {
					t.Fatalf("%q %q: problem without reason: %+v", s, layout, p)
				}
				continue
			}
			// Detected formats are real dates; a zero-less local time was
			// read in a zone (never guessed without one).
			if layout == "" && (got.Year() < 1 || got.Year() > 9999) {
				t.Fatalf("%q: year %d accepted", s, got.Year())
			}
		}
	})
}

// FuzzParsePromMatrix: a query_range answer never panics the parser; a
// pair is a time or a problem with a reason.
func FuzzParsePromMatrix(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"service":"cart"},"values":[[1767225600,"1"],[1767225660.5,"NaN"],[1767225720,"x"],[-1,"2"],[1,2,3]]}]},"warnings":["w"]}`))
	f.Add([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
	f.Add([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":null,"values":null}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		series, _, err := ParsePromMatrix(data)
		if err != nil {
			return
		}
		for _, s := range series {
			for _, v := range s.Values {
				if v.Problem != nil {
					if v.Problem.Reason == "" {
						t.Fatalf("problem without reason: %+v", v.Problem)
					}
					continue
				}
				if v.Time.Before(time.Unix(0, 0)) || v.Time.After(time.Unix(1e11, 0)) {
					t.Fatalf("time %v accepted", v.Time)
				}
			}
		}
	})
}

// FuzzParseLinkHeader: a Link header never panics the parser, and the
// relations it returns are lower case.
func FuzzParseLinkHeader(f *testing.F) {
	f.Add(`<https://x.service-now.com/api/now/table/incident?sysparm_offset=2>;rel="next",<https://x/y>; rel="last"`)
	f.Add(`<a>; rel="next prev"; title="x;y", <b>`)
	f.Add("garbage<")
	f.Fuzz(func(t *testing.T, h string) {
		for rel := range parseLinkHeader(h) {
			if rel != strings.ToLower(rel) {
				t.Fatalf("relation %q not lower case", rel)
			}
		}
	})
}

// FuzzRetryAfter: a Retry-After header never panics and never gives a
// negative wait.
func FuzzRetryAfter(f *testing.F) {
	for _, h := range []string{"7", "0", "-3", "Fri, 27 Nov 2026 10:00:30 GMT", "soon", "99999999999999999999"} {
		f.Add(h)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		if d, ok := retryAfter(h, now); ok && d < 0 {
			t.Fatalf("%q: wait %v", h, d)
		}
	})
}

func FuzzParseServiceNowPage(f *testing.F) {
	for _, n := range []string{"cmdb_ci_service.json", "cmdb_rel_ci.json", "incident.json", "change_request.json"} {
		seedFile(f, filepath.Join("servicenow", n))
	}
	f.Add([]byte(`{"result":[{"sys_id":"1","number":"INC1","opened_at":"2026-01-01 00:00:00","priority":"1 - Critical"}]}`))
	f.Add([]byte(`{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, problems, err := ParseSNPage(data)
		if err != nil {
			return
		}
		for _, p := range problems {
			checkProblem(t, p)
		}
		for _, r := range recs {
			if c, p := MapSNCI(r, "cmdb_ci"); p == nil && (c.ID == "" || c.Name == "") {
				t.Fatalf("CI without id or name: %+v", c)
			}
			if rel, p := MapSNRelation(r); p == nil && (rel.Parent == "" || rel.Child == "" || rel.Kind == "") {
				t.Fatalf("relation without ends: %+v", rel)
			}
			for _, table := range []string{"incident", "change_request"} {
				tk, p := MapSNTicket(r, table)
				if p != nil {
					if p.Reason == "" {
						t.Fatalf("problem without reason: %+v", p)
					}
					continue
				}
				if tk.ID == "" || tk.Start.IsZero() || (!tk.End.IsZero() && tk.End.Before(tk.Start)) {
					t.Fatalf("invalid ticket accepted: %+v", tk)
				}
				cis := map[string]store.CI{}
				if p := resolveTicket(&tk, cis); p != nil && p.Reason != store.ReasonUnknownReference {
					t.Fatalf("resolve: %+v", p)
				}
			}
		}
	})
}

func FuzzParseCatalog(f *testing.F) {
	seedFile(f, "catalog-info.yaml")
	seedFile(f, "catalog-bad.yaml")
	seedFile(f, "catalog-payments.yaml")
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ents, problems, _, err := ParseCatalog(bytes.NewReader(data), "f.yaml")
		if err != nil {
			return
		}
		for _, p := range problems {
			checkProblem(t, p)
		}
		seen := map[EntityRef]bool{}
		for _, e := range ents {
			if seen[e.Ref] {
				t.Fatalf("duplicate entity %s accepted", e.Ref)
			}
			seen[e.Ref] = true
			if !entityName.MatchString(e.Ref.Name) || e.Ref.Kind == "" {
				t.Fatalf("invalid entity accepted: %+v", e.Ref)
			}
			for _, r := range e.Refs {
				if r.To.Kind == "" || r.To.Name == "" || r.Kind == "" {
					t.Fatalf("invalid reference accepted: %+v", r)
				}
			}
		}
	})
}

func FuzzParseICS(f *testing.F) {
	seedFile(f, "campaigns.ics")
	seedFile(f, "campaigns-bad.ics")
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20261201T100000Z\nRRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30\nEND:VEVENT\nEND:VCALENDAR\n"))
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:y\nDTSTART;VALUE=DATE:19000101\nRRULE:FREQ=DAILY;INTERVAL=3;BYDAY=MO\nEXDATE:19000102,x\nEND:VEVENT\nEND:VCALENDAR\n"))
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	f.Add([]byte(icsOf("UID:p\nDTSTART:20260102T100000Z\nRRULE:FREQ=HOURLY;BYSETPOS=2", "UID:z\nDTSTART:20260102T100000Z\nRRULE:FREQ=DAILY;INTERVAL=0",
		"UID:r\nDTSTART:20260102T100000Z\nRDATE:20260103T100000Z,20260104T100000Z\nEXDATE:20260103T100000Z")))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseICS(bytes.NewReader(data), ICalOptions{Calendar: "c", From: from, To: to, MaxOccurrences: 1000, MaxTotal: 5000, Name: "f.ics"})
		if err != nil {
			return
		}
		if len(res.Events) > 5000 {
			t.Fatalf("%d occurrences past the bound", len(res.Events))
		}
		for _, p := range res.Problems {
			checkProblem(t, p)
			if !strings.HasPrefix(p.Location, "f.ics:") && !strings.HasPrefix(p.Location, "f.ics#") {
				t.Fatalf("problem location %q", p.Location)
			}
		}
		for _, e := range res.Events {
			if e.UID == "" || e.Start.Before(from) || !e.Start.Before(to) || e.End.Before(e.Start) {
				t.Fatalf("invalid occurrence: %+v", e)
			}
		}
	})
}

func FuzzParseTelemetryRecord(f *testing.F) {
	f.Add([]byte(line(1, "app", "10.0.0.1:80", 3)))
	f.Add([]byte(`{"ts":"2026-11-27T10:00:00Z","service":"app","requests":1e308,"errors":-0,"p50_ms":1,"p90_ms":1,"p99_ms":1,"in_flight":0,"bytes_in":0,"bytes_out":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, p := ParseTelemetryRecord(data)
		if p != nil {
			if p.Reason == "" {
				t.Fatalf("problem without reason: %+v", p)
			}
			return
		}
		if rec.Service == "" || rec.Time.IsZero() {
			t.Fatalf("record without service or time: %+v", rec)
		}
		for k, v := range rec.Values {
			if math.IsNaN(v) {
				t.Fatalf("%s is NaN", k)
			}
		}
	})
}
