package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

func newCoordinatorCmd() *cobra.Command {
	var (
		o          gaia.Options
		join       string
		tokensFile string
		joinTokenF string
		joinToken  string
		policyFile string
		logLevel   string
		pol        = fsm.DefaultPolicy()
		canaryWin  time.Duration
		rollout    time.Duration
		proxyTTL   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "coordinator --id n1 --raft-addr HOST:PORT --http-addr HOST:PORT --data-dir DIR [--bootstrap | --join URL]",
		Short: "Run a Gaia coordinator node (Raft-replicated directives, ITIL changes, directive stream)",
		Long: `Run one node of Gaia, the coordinator: directives are proposed as ITIL changes,
committed by a Raft quorum (hashicorp/raft with raft-wal), checkpointed, and
streamed to every proxy's agent (lbsys proxy --coordinator URL), with a canary
on a fraction of the proxies and automatic rollback.

Start the first node with --bootstrap, the others with --join URL-of-a-member;
1, 3 or 5 nodes. A node restarted on its --data-dir restores its snapshot and
log and needs neither flag. A leader that cannot reach a majority refuses
writes with 503 ("no quorum").

Auth: every API call but /healthz and /metrics needs a bearer token from
--tokens-file, lines of "<token> <name> <role>[,<role>...]" with roles viewer,
proposer, approver, agent, admin; LBSYS_COORDINATOR_TOKEN adds an admin token
named "admin". The API is described in docs/coordinator.md.

Signals: SIGTERM or SIGINT stop the node.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return usageError{err}
			}
			o.Logger = log
			if joinTokenF != "" {
				if joinToken, err = readTokenFile(joinTokenF); err != nil {
					return usageError{fmt.Errorf("--join-token-file: %w", err)}
				}
			}
			tokens := gaia.NewTokens()
			if tokensFile != "" {
				if tokens, err = gaia.LoadTokens(tokensFile); err != nil {
					return usageError{err}
				}
			}
			if env := strings.TrimSpace(os.Getenv("LBSYS_COORDINATOR_TOKEN")); env != "" {
				if err := tokens.Add(env, "admin", fsm.RoleAdmin); err != nil {
					return usageError{fmt.Errorf("LBSYS_COORDINATOR_TOKEN: %w", err)}
				}
				if joinToken == "" {
					joinToken = env
				}
			}
			if tokens.Len() == 0 {
				log.Warn("no tokens configured: every API call will be refused; use --tokens-file or LBSYS_COORDINATOR_TOKEN")
			}
			o.Tokens = tokens
			if join != "" {
				o.Join = strings.Split(join, ",")
				o.JoinToken = joinToken
				if joinToken == "" {
					return usageError{fmt.Errorf("--join needs a token with the admin role on the cluster: --join-token-file or LBSYS_COORDINATOR_TOKEN")}
				}
			}
			pol.CanaryWindow = directive.Duration(canaryWin)
			pol.RolloutTimeout = directive.Duration(rollout)
			pol.ProxyTTL = directive.Duration(proxyTTL)
			if policyFile != "" {
				b, err := os.ReadFile(policyFile)
				if err != nil {
					return usageError{fmt.Errorf("--policy-file: %w", err)}
				}
				if err := directive.DecodeStrict(b, &pol); err != nil {
					return usageError{fmt.Errorf("--policy-file %s: %w", policyFile, err)}
				}
			}
			if err := pol.Validate(); err != nil {
				return usageError{fmt.Errorf("policy: %w", err)}
			}
			o.Policy = &pol
			if logLevel == "debug" {
				o.RaftLog, o.RaftLevel = os.Stderr, "info"
			} else {
				o.RaftLog = os.Stderr
			}
			n, err := gaia.Start(o)
			if err != nil {
				return usageError{err}
			}
			p, _ := json.Marshal(pol)
			log.Info("lbsys coordinator started", "id", o.ID, "http", n.URL(), "raft", o.RaftAddr, "policy", string(p))
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			select {
			case s := <-sigs:
				log.Info("stopping", "signal", s.String())
			case <-cmd.Context().Done():
			}
			return n.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ID, "id", "", "this node's stable ID in the cluster, e.g. n1 (required)")
	f.StringVar(&o.RaftAddr, "raft-addr", "", "host:port of the Raft transport, reachable by the other nodes (required)")
	f.StringVar(&o.HTTPAddr, "http-addr", "127.0.0.1:7101", "host:port of the API (also what other nodes redirect clients to)")
	f.StringVar(&o.HTTPAdvertise, "http-advertise", "", "host:port clients and other nodes are redirected to, when --http-addr is a wildcard (default: --http-addr)")
	f.StringVar(&o.DataDir, "data-dir", "", "directory for the write-ahead log and the snapshots (required)")
	f.BoolVar(&o.Bootstrap, "bootstrap", false, "form a new cluster of this node (first start only; ignored when --data-dir has state)")
	f.StringVar(&join, "join", "", "URL(s) of existing members to join through, comma-separated (first start only)")
	f.StringVar(&tokensFile, "tokens-file", "", "bearer tokens: lines of `<token> <name> <role>[,<role>...]`")
	f.StringVar(&joinTokenF, "join-token-file", "", "file holding the admin token used with --join (default: LBSYS_COORDINATOR_TOKEN)")
	f.DurationVar(&o.HeartbeatTimeout, "heartbeat-timeout", time.Second, "Raft heartbeat timeout (150ms suits a LAN or tests)")
	f.DurationVar(&o.ElectionTimeout, "election-timeout", time.Second, "Raft election timeout")
	f.DurationVar(&o.LeaderLeaseTimeout, "leader-lease-timeout", 0, "Raft leader lease: a leader steps down after this long without a majority (default: half the heartbeat timeout)")
	f.DurationVar(&o.CommitTimeout, "commit-timeout", 20*time.Millisecond, "Raft commit timeout (how soon followers learn of a commit when idle)")
	f.Uint64Var(&o.SnapshotThreshold, "snapshot-threshold", 1024, "checkpoint (Raft snapshot) every this many log entries")
	f.DurationVar(&o.SnapshotInterval, "snapshot-interval", 10*time.Second, "how often the snapshot threshold is checked")
	f.Uint64Var(&o.TrailingLogs, "trailing-logs", 1024, "log entries kept after a snapshot (lets lagging followers catch up without one)")
	f.IntVar(&o.WALSegmentSize, "wal-segment-size", 8<<20, "raft-wal segment size in bytes (pre-allocated)")
	f.DurationVar(&o.WatchWait, "watch-wait", 20*time.Second, "longest a directive long poll is held")
	f.DurationVar(&o.ReportInterval, "report-interval", time.Second, "how often agents report statistics during a canary window")
	f.DurationVar(&o.TickInterval, "tick", 100*time.Millisecond, "how often the leader checks deadlines (schedules, canary windows, rollouts)")
	f.DurationVar(&o.RequestTimeout, "request-timeout", 5*time.Second, "longest a write waits for its commit before answering 503")
	f.StringVar(&policyFile, "policy-file", "", "initial workflow and canary policy as JSON (fields of GET /v1/policy); overrides the policy flags")
	f.Float64Var(&pol.CanaryFraction, "canary-fraction", pol.CanaryFraction, "initial policy: fraction of proxies that get a new version first (0: no canary)")
	f.DurationVar(&canaryWin, "canary-window", pol.CanaryWindow.Std(), "initial policy: how long a canary runs before promotion")
	f.Float64Var(&pol.MaxWeightMovePercent, "max-weight-move", pol.MaxWeightMovePercent, "initial policy: largest weight move (%) of a standard change")
	f.BoolVar(&pol.SelfApproval, "allow-self-approval", false, "initial policy: let requesters approve their own normal changes")
	f.DurationVar(&rollout, "rollout-timeout", pol.RolloutTimeout.Std(), "initial policy: how long proxies may take to apply a version")
	f.DurationVar(&proxyTTL, "proxy-ttl", pol.ProxyTTL.Std(), "initial policy: a proxy silent this long stops counting for rollouts")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
