package grafana

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the committed files under deploy/ from the generator")

// deployDir is the repository's deploy/ directory.
const deployDir = "../../../deploy"

// TestGeneratedFilesMatchDeploy is the golden test: the committed files
// under deploy/ are exactly what the generator writes with the default
// options, and deploy/grafana and deploy/prometheus hold nothing else. Run
// with -update after changing the generator.
func TestGeneratedFilesMatchDeploy(t *testing.T) {
	files, err := Files(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if _, err := Write(deployDir, DefaultOptions()); err != nil {
			t.Fatal(err)
		}
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(deployDir, filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("deploy/%s: %v (run go test ./internal/dashboard/grafana -run TestGeneratedFilesMatchDeploy -update)", rel, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/%s differs from the generator's output at line %d (run go test ./internal/dashboard/grafana -run TestGeneratedFilesMatchDeploy -update, and commit it)", rel, firstDiffLine(got, want))
		}
	}
	for _, sub := range []string{"grafana", "prometheus"} {
		filepath.WalkDir(filepath.Join(deployDir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(deployDir, p)
			if _, ok := files[filepath.ToSlash(rel)]; !ok {
				t.Errorf("deploy/%s is not generated any more: delete it", rel)
			}
			return nil
		})
	}
}

func firstDiffLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range la {
		if i >= len(lb) || la[i] != lb[i] {
			return i + 1
		}
	}
	return len(la) + 1
}

// TestGenerationIsDeterministic: two runs give the same bytes, or the
// golden test would flake.
func TestGenerationIsDeterministic(t *testing.T) {
	a, err := Files(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Files(Options{})
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			t.Errorf("%s differs between two runs", k)
		}
	}
}

// dashboardJSON is the part of Grafana's model the tests read.
type dashboardJSON struct {
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr       string `json:"expr"`
			RefID      string `json:"refId"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

// TestQueriesAreWhatTheJSONCarries: Queries (what the integration test
// runs against Prometheus) lists exactly the queries of the JSON Grafana
// imports, panel by panel, so no query in a dashboard goes unchecked. And
// the model is sane: unique panel IDs, panels inside the 24-column grid,
// every query on the $datasource variable, every variable a query uses
// defined.
func TestQueriesAreWhatTheJSONCarries(t *testing.T) {
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d dashboards, want the overview and the forecast-control one", len(ds))
	}
	var fromJSON []string
	for _, d := range ds {
		var m dashboardJSON
		if err := json.Unmarshal(d.JSON, &m); err != nil {
			t.Fatalf("%s: %v", d.File, err)
		}
		vars := map[string]bool{"__rate_interval": true, "__interval": true}
		for _, v := range m.Templating.List {
			vars[v.Name] = true
		}
		ids := map[int]bool{}
		for _, p := range m.Panels {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", d.UID, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("%s: panel %q at %+v is outside the grid", d.UID, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.UID, p.Title)
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q uses data source %q", d.UID, p.Title, p.Datasource.UID)
			}
			for _, q := range p.Targets {
				if q.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q query %s uses data source %q", d.UID, p.Title, q.RefID, q.Datasource.UID)
				}
				for _, v := range regexp.MustCompile(`\$(\w+)`).FindAllStringSubmatch(q.Expr, -1) {
					if !vars[v[1]] {
						t.Errorf("%s: panel %q uses $%s, which the dashboard does not define", d.UID, p.Title, v[1])
					}
				}
				fromJSON = append(fromJSON, d.UID+"|"+p.Title+"|"+q.RefID+"|"+q.Expr)
			}
		}
		for _, a := range m.Annotations.List {
			fromJSON = append(fromJSON, d.UID+"|annotation: "+a.Name+"||"+a.Expr)
		}
	}
	var fromCode []string
	for _, q := range Queries() {
		fromCode = append(fromCode, q.Dashboard+"|"+q.Panel+"|"+q.RefID+"|"+q.Expr)
	}
	sort.Strings(fromJSON)
	sort.Strings(fromCode)
	if strings.Join(fromJSON, "\n") != strings.Join(fromCode, "\n") {
		t.Errorf("Queries() and the JSON disagree:\nJSON:\n%s\n\nQueries():\n%s", strings.Join(fromJSON, "\n"), strings.Join(fromCode, "\n"))
	}
}

// recordedName matches a recording rule's name in an expression.
var recordedName = regexp.MustCompile(`\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b`)

// TestRecordedSeriesExist: every recording-rule name a panel or an alert
// reads is recorded by a rule, so a renamed rule cannot leave a panel
// empty; and every rule is read by something.
func TestRecordedSeriesExist(t *testing.T) {
	recorded := map[string]bool{}
	for _, g := range RecordingRules() {
		for _, r := range g.Rules {
			if recorded[r.Record] {
				t.Errorf("rule %s recorded twice", r.Record)
			}
			recorded[r.Record] = true
		}
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		for _, n := range recordedName.FindAllString(expr, -1) {
			used[n] = true
			if !recorded[n] {
				t.Errorf("%s reads %s, which no recording rule records", where, n)
			}
		}
	}
	for _, q := range Queries() {
		check(q.Dashboard+" / "+q.Panel, q.Expr)
	}
	for _, g := range append(RecordingRules(), AlertingRules()...) {
		for _, r := range g.Rules {
			check("rule "+r.Record+r.Alert, r.Expr)
		}
	}
	for n := range recorded {
		if !used[n] {
			t.Errorf("recording rule %s is read by no panel and no alert", n)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string // "" when valid
	}{
		{"defaults", Options{}, ""},
		{"custom", Options{PrometheusURL: "https://prom.example:9090", DashboardsPath: "/srv/d", ProxyTargets: []string{"proxy-1.example:9901", "[::1]:9901"}, CoordinatorTargets: []string{}, ScrapeInterval: 5 * time.Second}, ""},
		{"relative URL", Options{PrometheusURL: "prom:9090"}, "prometheus URL"},
		{"relative dashboards path", Options{DashboardsPath: "dashboards"}, "absolute directory"},
		{"control character in the dashboards path", Options{DashboardsPath: "/d\rx: 1"}, "control characters"},
		{"target without port", Options{ProxyTargets: []string{"127.0.0.1"}}, `proxy target "127.0.0.1": want host:port`},
		{"target with a path", Options{CoordinatorTargets: []string{"127.0.0.1:7101/metrics"}}, "coordinator target"},
		{"target breaking the YAML", Options{ProxyTargets: []string{"a\"b:1"}}, "proxy target"},
		{"sub-second interval", Options{ScrapeInterval: 500 * time.Millisecond}, "whole seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Files(tc.o); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
			if _, err := Files(tc.o); err == nil {
				t.Fatal("Files accepted options Check refuses")
			}
		})
	}
}

// TestPrometheusConfigShortInterval: a 1 s interval (tests) gets a scrape
// timeout below it, which Prometheus requires.
func TestPrometheusConfigShortInterval(t *testing.T) {
	b, err := PrometheusConfigYAML(Options{ProxyTargets: []string{"127.0.0.1:1234"}, CoordinatorTargets: []string{}, ScrapeInterval: time.Second}, []string{"/x/*.yml"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"scrape_interval: 1s", "scrape_timeout: 900ms", "- 127.0.0.1:1234", "- /x/*.yml"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	if strings.Contains(s, "lbsys-coordinator") {
		t.Errorf("an empty coordinator list still scrapes coordinators:\n%s", s)
	}
}
