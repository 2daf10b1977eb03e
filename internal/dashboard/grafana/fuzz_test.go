package grafana

import (
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// FuzzOptions: whatever `lbsys dashboard` is given on its command line
// (data source URL, dashboards path, scrape targets), generation never
// panics, and options it accepts give YAML files that parse back with the
// values unchanged: a target or URL cannot inject keys into the
// Prometheus or Grafana configuration.
func FuzzOptions(f *testing.F) {
	f.Add("http://127.0.0.1:9090", "/var/lib/grafana/dashboards/lbsys", "127.0.0.1:9901", "127.0.0.1:7101", int64(15))
	f.Add("https://prom:9090/x?y=1#z", "/a b/c", "[::1]:1", "", int64(1))
	f.Add("http://h:1\n  - evil", "/d\nx: 1", "h:1\n- x:2", "h:2#c", int64(0))
	f.Add("http://h:1", "/d\rx: 1", "h:1", "h:2", int64(15))
	f.Fuzz(func(t *testing.T, promURL, path, proxy, coord string, seconds int64) {
		o := Options{PrometheusURL: promURL, DashboardsPath: path, ProxyTargets: []string{proxy}, CoordinatorTargets: strings.Split(coord, ","), ScrapeInterval: time.Duration(seconds) * time.Second}
		files, err := Files(o)
		if err != nil {
			if o.Check() == nil {
				t.Fatalf("Check accepts what Files refuses: %v", err)
			}
			return
		}
		// Nothing a value contains becomes a key of its own.
		for file, keys := range map[string]string{
			PrometheusConfig:       "global,rule_files,scrape_configs",
			DatasourceProvisioning: "apiVersion,datasources",
			DashboardProvisioning:  "apiVersion,providers",
		} {
			var top map[string]any
			if err := yaml.Unmarshal(files[file], &top); err != nil {
				t.Fatalf("%s does not parse: %v\n%s", file, err, files[file])
			}
			var got []string
			for k := range top {
				got = append(got, k)
			}
			sort.Strings(got)
			if strings.Join(got, ",") != keys {
				t.Fatalf("%s has top-level keys %v, want %s:\n%s", file, got, keys, files[file])
			}
		}
		var prom struct {
			ScrapeConfigs []struct {
				JobName       string `yaml:"job_name"`
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		if err := yaml.Unmarshal(files[PrometheusConfig], &prom); err != nil {
			t.Fatalf("prometheus.yml does not parse: %v\n%s", err, files[PrometheusConfig])
		}
		if len(prom.ScrapeConfigs) == 0 || prom.ScrapeConfigs[0].JobName != "lbsys-proxy" ||
			len(prom.ScrapeConfigs[0].StaticConfigs) != 1 || strings.Join(prom.ScrapeConfigs[0].StaticConfigs[0].Targets, ",") != proxy {
			t.Fatalf("proxy target %q came back as %+v", proxy, prom.ScrapeConfigs)
		}
		var ds struct {
			Datasources []struct {
				URL string `yaml:"url"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(files[DatasourceProvisioning], &ds); err != nil || len(ds.Datasources) != 1 || ds.Datasources[0].URL != promURL {
			t.Fatalf("data source URL %q came back as %+v (%v)", promURL, ds, err)
		}
		var prov struct {
			Providers []struct {
				Options map[string]string `yaml:"options"`
			} `yaml:"providers"`
		}
		if err := yaml.Unmarshal(files[DashboardProvisioning], &prov); err != nil || len(prov.Providers) != 1 || prov.Providers[0].Options["path"] != path {
			t.Fatalf("dashboards path %q came back as %+v (%v)", path, prov, err)
		}
	})
}
