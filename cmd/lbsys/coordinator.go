package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/api/change"
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
		tlsDir     string
		logLevel   string
		pol        = change.DefaultPolicy()
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

Raft: with --tls-dir, nodes talk Raft over mutual TLS with the cluster CA
(only members holding a node certificate get in) and seal every log entry
with the cluster key (an entry without a valid seal changes nothing).
Create the directory once with "lbsys coordinator init-tls". A --raft-addr
that is not a loopback address is refused without --tls-dir; on loopback
the node runs unauthenticated and says so in its log (development only).

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
			if tlsDir != "" {
				creds, err := gaia.LoadCredentials(tlsDir, o.ID)
				if err != nil {
					return usageError{err}
				}
				o.Credentials = creds
			}
			if logLevel == "debug" {
				o.RaftLog, o.RaftLevel = os.Stderr, "info"
			} else {
				o.RaftLog = os.Stderr
			}
			// Caught before the node starts: a SIGTERM that came before
			// Notify would end the process without stopping the node.
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			n, err := gaia.Start(o)
			if err != nil {
				return usageError{err}
			}
			p, _ := json.Marshal(pol)
			log.Info("lbsys coordinator started", "id", o.ID, "http", n.URL(), "raft", o.RaftAddr, "policy", string(p))
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
	durationVar(f, &o.HeartbeatTimeout, "heartbeat-timeout", time.Second, "Raft heartbeat timeout (150ms suits a LAN or tests)")
	durationVar(f, &o.ElectionTimeout, "election-timeout", time.Second, "Raft election timeout")
	durationVar(f, &o.LeaderLeaseTimeout, "leader-lease-timeout", 0, "Raft leader lease: a leader steps down after this long without a majority (default: half the heartbeat timeout)")
	durationVar(f, &o.CommitTimeout, "commit-timeout", 20*time.Millisecond, "Raft commit timeout (how soon followers learn of a commit when idle)")
	f.Uint64Var(&o.SnapshotThreshold, "snapshot-threshold", 1024, "checkpoint (Raft snapshot) every this many log entries")
	durationVar(f, &o.SnapshotInterval, "snapshot-interval", 10*time.Second, "how often the snapshot threshold is checked")
	f.Uint64Var(&o.TrailingLogs, "trailing-logs", 1024, "log entries kept after a snapshot (lets lagging followers catch up without one)")
	f.IntVar(&o.WALSegmentSize, "wal-segment-size", 8<<20, "raft-wal segment size in bytes (pre-allocated)")
	durationVar(f, &o.WatchWait, "watch-wait", 20*time.Second, "longest a directive long poll is held")
	durationVar(f, &o.ReportInterval, "report-interval", time.Second, "how often agents report statistics during a canary window")
	durationVar(f, &o.TickInterval, "tick", 100*time.Millisecond, "how often the leader checks deadlines (schedules, canary windows, rollouts)")
	durationVar(f, &o.RequestTimeout, "request-timeout", 5*time.Second, "longest a write waits for its commit before answering 503")
	f.StringVar(&policyFile, "policy-file", "", "initial workflow and canary policy as JSON (fields of GET /v1/policy); overrides the policy flags")
	f.StringVar(&tlsDir, "tls-dir", "", "the cluster's credentials (ca.crt, <id>.crt, <id>.key, cluster.key; see init-tls): mutual TLS on the Raft port and sealed log entries; required unless --raft-addr is a loopback address")
	f.Float64Var(&pol.CanaryFraction, "canary-fraction", pol.CanaryFraction, "initial policy: fraction of proxies that get a new version first (0: no canary)")
	durationVar(f, &canaryWin, "canary-window", pol.CanaryWindow.Std(), "initial policy: how long a canary runs before promotion")
	f.Float64Var(&pol.MaxWeightMovePercent, "max-weight-move", pol.MaxWeightMovePercent, "initial policy: largest weight move (%) of a standard change")
	f.BoolVar(&pol.SelfApproval, "allow-self-approval", false, "initial policy: let requesters approve their own normal changes")
	durationVar(f, &rollout, "rollout-timeout", pol.RolloutTimeout.Std(), "initial policy: how long proxies may take to apply a version")
	durationVar(f, &proxyTTL, "proxy-ttl", pol.ProxyTTL.Std(), "initial policy: a proxy silent this long stops counting for rollouts")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.AddCommand(newCoordinatorInitTLSCmd(), newCoordinatorResetAgentCmd())
	return cmd
}

func newCoordinatorInitTLSCmd() *cobra.Command {
	var (
		dir   string
		nodes []string
		valid time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init-tls --dir DIR --node n1=HOST[,HOST...] [--node ...]",
		Short: "Create the cluster's credentials: a CA, a certificate per node, the cluster key",
		Long: `Create (or extend) a credentials directory for the coordinators' Raft
transport:

  ca.crt       the cluster CA: nodes trust only certificates it signed
  ca.key       the CA's key: needed only to add nodes later; keep it offline
  <id>.crt/key each node's certificate (for the hosts given: the addresses
               of its --raft-addr) and key, used to serve and to dial
  cluster.key  the key that seals every Raft log entry

Copy ca.crt, cluster.key and the node's own <id>.crt and <id>.key to each
node's --tls-dir (mode 600 for keys). Run it again on the same directory to
add nodes: the CA and the cluster key are kept; existing node files are
never overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{fmt.Errorf("--dir is required")}
			}
			var specs []gaia.NodeSpec
			for _, n := range nodes {
				spec, err := gaia.ParseNodeSpec(n)
				if err != nil {
					return usageError{err}
				}
				specs = append(specs, spec)
			}
			if len(specs) == 0 {
				return usageError{fmt.Errorf("--node is required: one per coordinator, e.g. --node n1=10.0.0.1")}
			}
			created, err := gaia.InitTLS(dir, specs, valid)
			if err != nil {
				return usageError{err}
			}
			w := cmd.OutOrStdout()
			for _, f := range created {
				fmt.Fprintf(w, "created %s\n", f)
			}
			if kb, err := os.ReadFile(filepath.Join(dir, gaia.ClusterKeyFile)); err == nil {
				if k, err := gaia.ParseClusterKey(kb); err == nil {
					fmt.Fprintf(w, "cluster key id %s (shown in /v1/status as key_id)\n", fsm.KeyID(k))
				}
			}
			fmt.Fprintf(w, "next: give each node ca.crt, cluster.key, <id>.crt and <id>.key in its --tls-dir; keep ca.key offline\n")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "credentials directory (created with mode 700)")
	cmd.Flags().StringArrayVar(&nodes, "node", nil, "a node: ID=HOST[,HOST...] (its --id and the IPs or DNS names of its --raft-addr); repeat per node")
	durationVar(cmd.Flags(), &valid, "valid", 2*365*24*time.Hour, "how long node certificates are valid")
	return cmd
}

func newCoordinatorResetAgentCmd() *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "reset-agent --state-file FILE",
		Short: "Let a proxy take directives from another coordinator cluster (after the coordinators were rebuilt)",
		Long: `A proxy runs directive versions of one coordinator cluster and refuses
those of another: a rebuilt cluster numbers its versions from 1 again, with
other content, so its version N is not the old cluster's N. To move a proxy
to the new cluster: stop the proxy, run this on its state file
(coordinator.state_file), start the proxy. The file is moved aside (to
FILE.reset-<time>), so the proxy starts without a directive (reactive
balancing) and takes the new cluster's stable version at its first poll.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state == "" {
				return usageError{fmt.Errorf("--state-file is required: the proxy's coordinator.state_file")}
			}
			b, err := os.ReadFile(state)
			if err != nil {
				return usageError{fmt.Errorf("--state-file: %w (nothing to reset)", err)}
			}
			was := "an unreadable directive"
			if d, err := directive.Decode(b); err == nil {
				cl := d.Cluster
				if cl == "" {
					cl = "(none recorded)"
				}
				was = fmt.Sprintf("version %d of cluster %s", d.Version, cl)
			}
			aside := state + ".reset-" + time.Now().UTC().Format("20060102T150405Z")
			if err := os.Rename(state, aside); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s held %s; moved to %s\nstart the proxy: it takes the stable version of the cluster it reaches first\n", state, was, aside)
			return nil
		},
	}
	cmd.Flags().StringVar(&state, "state-file", "", "the proxy's state file (coordinator.state_file in its configuration)")
	return cmd
}
