package gaia

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// Metric names of the coordinator (Prometheus conventions, like
// internal/telemetry's for the proxy).
const (
	MetricLeader         = "lbsys_gaia_leader"
	MetricStableVersion  = "lbsys_gaia_stable_version"
	MetricLatestVersion  = "lbsys_gaia_latest_version"
	MetricLive           = "lbsys_gaia_stable_live"
	MetricActiveProxies  = "lbsys_gaia_active_proxies"
	MetricCommits        = "lbsys_gaia_commits_total"
	MetricCommitSeconds  = "lbsys_gaia_commit_seconds"
	MetricElections      = "lbsys_gaia_leaderships_total"
	MetricPushes         = "lbsys_gaia_directive_pushes_total"
	MetricReportsDropped = "lbsys_gaia_reports_dropped_total"
	// Security and hygiene.
	MetricRaftRefused     = "lbsys_gaia_raft_refused_connections_total"
	MetricUnauthenticated = "lbsys_gaia_unauthenticated_entries_total"
	MetricClockClamps     = "lbsys_gaia_clock_clamps_total"
	MetricHalted          = "lbsys_gaia_halted"
	MetricArchivedChanges = "lbsys_gaia_archived_changes_total"
	MetricArchiveFailures = "lbsys_gaia_archive_failures_total"
)

type metrics struct {
	commits        *prometheus.CounterVec
	commitSeconds  prometheus.Histogram
	elections      prometheus.Counter
	pushes         prometheus.Counter
	reportsDropped prometheus.Counter
}

func newMetrics(n *Node, reg *prometheus.Registry) *metrics {
	m := &metrics{
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricCommits,
			Help: "Commands proposed by this node, by operation and result (ok, refused, no_quorum, not_leader, unknown)."}, []string{"op", "result"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricCommitSeconds,
			Help:    "Time from proposal to commit and apply on this leader.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		elections:      prometheus.NewCounter(prometheus.CounterOpts{Name: MetricElections, Help: "Times this node became leader."}),
		pushes:         prometheus.NewCounter(prometheus.CounterOpts{Name: MetricPushes, Help: "Directives sent to agents."}),
		reportsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricReportsDropped, Help: "Agent reports dropped because the queue was full (agents repeat them)."}),
	}
	read := func(f func(m *fsm.Machine) float64) func() float64 {
		return func() float64 {
			var v float64
			n.fsm.read(func(m *fsm.Machine) { v = f(m) })
			return v
		}
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(m.commits, m.commitSeconds, m.elections, m.pushes, m.reportsDropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricLeader, Help: "1 when this node is the Raft leader."},
			func() float64 { return b2f(n.raft.State() == raft.Leader) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricStableVersion, Help: "Directive version every proxy outside a canary should run."},
			read(func(m *fsm.Machine) float64 { return float64(m.Stable) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricLatestVersion, Help: "Highest directive version created."},
			read(func(m *fsm.Machine) float64 { return float64(m.Latest) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricLive, Help: "1 when every active proxy ACKed the stable version."},
			read(func(m *fsm.Machine) float64 { return b2f(m.Live()) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricActiveProxies, Help: "Proxies heard from within the proxy TTL."},
			read(func(m *fsm.Machine) float64 { return float64(len(m.ActiveProxies())) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricRaftRefused, Help: "Incoming Raft connections refused because the peer did not authenticate as a cluster member (mutual TLS)."},
			func() float64 {
				if n.stream == nil {
					return 0
				}
				return float64(n.stream.refused.Load())
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricUnauthenticated, Help: "Committed log entries this replica refused because they were not sealed with the cluster key (forged)."},
			func() float64 {
				n.fsm.mu.RLock()
				defer n.fsm.mu.RUnlock()
				return float64(n.fsm.unauthenticated)
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricClockClamps, Help: "Log entries whose time was ahead of the log time by more than max_clock_step (a leader's clock is off)."},
			read(func(m *fsm.Machine) float64 { return float64(m.ClockClamps) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricHalted, Help: "1 when this coordinator stopped taking part in the cluster (its cluster key differs from the cluster's)."},
			func() float64 { return b2f(n.Halted() != "") }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricArchivedChanges, Help: "Closed change records written to this node's archive file."},
			func() float64 { n.archive.mu.Lock(); defer n.archive.mu.Unlock(); return float64(n.archive.written) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricArchiveFailures, Help: "Closed change records this node could not write to its archive file."},
			func() float64 { n.archive.mu.Lock(); defer n.archive.mu.Unlock(); return float64(n.archive.failed) }),
	)
	return m
}
