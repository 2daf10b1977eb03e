package ingest

// Fuzz targets for every parser that reads outside input. Run one with,
// for example:
//
//	go test ./internal/ingest -run '^$' -fuzz FuzzParseICS -fuzztime 30s
//
// Without -fuzz they run their seeds as ordinary tests.

import (
	"bytes"
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

func FuzzParseCSV(f *testing.F) {
	seedFile(f, "trace-bad.csv")
	f.Add([]byte("timestamp,requests\n1995-07-01 00:00:00,42\n1995-07-01 00:01:00,\n"))
	f.Add([]byte("\ufefftimestamp,v\n1767225600,1\n1767225600000,2\n\"2026-01-01T00:00:00Z\",\"3\"\n"))
	f.Add([]byte("timestamp,v\n2026-10-25 02:30:00,1\n"))
	ny, _ := time.LoadLocation("America/New_York")
	f.Fuzz(func(t *testing.T, data []byte) {
		rows := 0
		err := ParseCSV(bytes.NewReader(data), CSVOptions{TimeCol: "timestamp", Time: TimeFormat{Loc: ny}, Name: "f.csv"},
			func(r CSVRow) error {
				rows++
				if r.Time.IsZero() || r.Line < 2 {
					t.Fatalf("bad row %+v", r)
				}
				return nil
			}, func(p Problem) { checkProblem(t, p) })
		if err != nil && rows > 0 && !strings.Contains(err.Error(), "f.csv") {
			t.Fatalf("error without location: %v", err)
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
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseICS(bytes.NewReader(data), ICalOptions{Calendar: "c", From: from, To: to, MaxOccurrences: 1000, Name: "f.ics"})
		if err != nil {
			return
		}
		for _, p := range res.Problems {
			checkProblem(t, p)
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
