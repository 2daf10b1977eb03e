package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/ingest"
)

// The store commands of `lbsys ingest`: status, compact and graph.

func newIngestStatusCmd(storePath *string) *cobra.Command {
	var n int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the store's counts, recent runs and the latest quarantine reasons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			if _, err := os.Stat(*storePath); err != nil {
				return usageError{fmt.Errorf("--store %s: %w (nothing ingested yet?)", *storePath, err)}
			}
			st, err := openStore(ctx, *storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := ingest.ReadStatus(ctx, st, *storePath, n)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			s.WriteText(out)
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "last", "n", 10, "how many recent runs and quarantined rows to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newIngestCompactCmd(storePath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "compact",
		Short: "Apply the store's retention now (raw → 1m → 1h) and trim the quarantine",
		Long: `Apply the retention of window series, counted back from now (never from the
data: one point stamped 2126 must not age the rest of its series out): delete
raw points older than 48 h (their 1-minute buckets stay), 1-minute buckets
older than 35 days (their 1-hour buckets stay) and 1-hour buckets older than
about three years. Archive series (CSV traces by default) are kept whole.
Trim the quarantine to its newest 100,000 rows. Every time-series import does
this at its end, and a --follow telemetry import every 10 minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			st, err := openStore(ctx, *storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := st.Compact(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted raw points %d, 1m buckets %d, 1h buckets %d, quarantine rows %d, runs %d\n",
				res.RawDeleted, res.MinuteDeleted, res.HourDeleted, res.QuarantineDeleted, res.RunsDeleted)
			return nil
		},
	}
}

func newIngestGraphCmd(storePath *string) *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "graph [--service S]",
		Short: "Show the dependency graph: fan-out/fan-in per node, upstream/downstream of one, cycles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			st, err := openStore(ctx, *storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			g, err := st.Graph(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if service != "" {
				key, ok := g.Resolve(service)
				if !ok {
					return usageError{fmt.Errorf("--service %q is not in the graph (lbsys ingest graph lists the nodes)", service)}
				}
				ingest.WriteNode(out, g, key)
				return nil
			}
			ingest.WriteGraph(out, g)
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "show one node's dependencies and dependents (service name, CI ID or CI name)")
	return cmd
}
