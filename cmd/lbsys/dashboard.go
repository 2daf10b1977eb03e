package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/dashboard/grafana"
)

func newDashboardCmd() *cobra.Command {
	var (
		out  string
		opts = grafana.DefaultOptions()
	)
	cmd := &cobra.Command{
		Use:   "dashboard --out DIR",
		Short: "Write the Grafana dashboards, their provisioning, and Prometheus rules and scrape config",
		Long: `Write, under --out:

  grafana/dashboards/lbsys-overview.json          per service: traffic, errors,
                                                  latency, sheds, retries, ejections,
                                                  admission, upstreams; proxy health
  grafana/dashboards/lbsys-forecast-control.json  load vs forecast, replica floors,
                                                  admission seeds, cache, cost, SLO burn
  grafana/provisioning/datasources/lbsys.yaml     the Prometheus data source
  grafana/provisioning/dashboards/lbsys.yaml      a provider reading --dashboards-path
  prometheus/prometheus.yml                       scrape config for proxies and coordinators
  prometheus/rules/lbsys-recording.yml            recording rules the dashboards read
  prometheus/rules/lbsys-alerts.yml               alerting rules

The files are generated from code (internal/dashboard/grafana); with the
default flags they are the ones committed under deploy/. To use them: copy
the provisioning files to /etc/grafana/provisioning/, the dashboards to
--dashboards-path, and run Prometheus with prometheus/prometheus.yml (its
rule_files are relative to it).`,
		Example: `  lbsys dashboard --out ./monitoring
  lbsys dashboard --out ./monitoring --proxy 10.1.0.5:9901 --proxy 10.1.0.6:9901 --prometheus-url http://prometheus:9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError{errors.New("--out is required: the directory to write the files into (created if missing)")}
			}
			if err := opts.Check(); err != nil {
				return usageError{fmt.Errorf("%w (lbsys dashboard --help describes the flags)", err)}
			}
			if fi, err := os.Stat(out); err == nil && !fi.IsDir() {
				return usageError{fmt.Errorf("--out %s is a file; give a directory", out)}
			}
			written, err := grafana.Write(out, opts)
			if err != nil {
				return fmt.Errorf("writing under %s: %w", out, err)
			}
			w := cmd.OutOrStdout()
			for _, p := range written {
				fmt.Fprintln(w, "wrote", p)
			}
			fmt.Fprintf(w, "check them with: promtool check config %s\n", filepath.Join(out, filepath.FromSlash(grafana.PrometheusConfig)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to write into (required; created if missing; files there are overwritten)")
	f.StringVar(&opts.PrometheusURL, "prometheus-url", opts.PrometheusURL, "URL of the Prometheus the Grafana data source queries")
	f.StringVar(&opts.DashboardsPath, "dashboards-path", opts.DashboardsPath, "absolute directory Grafana's dashboard provider reads the JSON files from")
	f.StringSliceVar(&opts.ProxyTargets, "proxy", opts.ProxyTargets, "proxy admin address (host:port) to scrape; repeat or comma-separate for several")
	f.StringSliceVar(&opts.CoordinatorTargets, "coordinator", opts.CoordinatorTargets, "coordinator API address (host:port) to scrape; repeat for several; --coordinator= for none")
	durationVar(f, &opts.ScrapeInterval, "scrape-interval", opts.ScrapeInterval, "Prometheus scrape and rule evaluation interval (whole seconds)")
	return cmd
}
