package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// clientFlags are the flags of every command that talks to a coordinator.
type clientFlags struct {
	urls      string
	tokenFile string
	timeout   time.Duration
	json      bool
}

func (cf *clientFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	def := os.Getenv("LBSYS_COORDINATOR")
	if def == "" {
		def = "http://127.0.0.1:7101"
	}
	f.StringVar(&cf.urls, "coordinator", def, "coordinator URL(s), comma-separated (any member; default $LBSYS_COORDINATOR)")
	f.StringVar(&cf.tokenFile, "token-file", "", "file whose first line is your bearer token (default: $LBSYS_TOKEN, then $LBSYS_COORDINATOR_TOKEN)")
	f.DurationVar(&cf.timeout, "timeout", 15*time.Second, "give up after this long")
	f.BoolVar(&cf.json, "json", false, "print the coordinator's JSON answer")
}

func (cf *clientFlags) client() (*client.Client, context.Context, context.CancelFunc, error) {
	token := ""
	switch {
	case cf.tokenFile != "":
		t, err := readTokenFile(cf.tokenFile)
		if err != nil {
			return nil, nil, nil, usageError{fmt.Errorf("--token-file: %w", err)}
		}
		token = t
	case os.Getenv("LBSYS_TOKEN") != "":
		token = strings.TrimSpace(os.Getenv("LBSYS_TOKEN"))
	default:
		token = strings.TrimSpace(os.Getenv("LBSYS_COORDINATOR_TOKEN"))
	}
	if token == "" {
		return nil, nil, nil, usageError{errors.New("no token: pass --token-file or set LBSYS_TOKEN")}
	}
	var urls []string
	for _, u := range strings.Split(cf.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return nil, nil, nil, usageError{fmt.Errorf("--coordinator %q: want http://host:port", u)}
			}
			urls = append(urls, u)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	return client.New(urls, token), ctx, cancel, nil
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 64<<10)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("%s: the first line is empty; write the token on it", path)
	}
	return line, nil
}

// apiError maps the coordinator's refusals to exit codes: bad input
// (400, 422) is a usage error (2), the rest a failure (1).
func apiError(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && (ce.Status == 400 || ce.Status == 422) {
		return usageError{err}
	}
	return err
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func parseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id == 0 {
		return 0, usageError{fmt.Errorf("change ID %q: want a positive number (see lbsys change list)", s)}
	}
	return id, nil
}

func newChangeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "change",
		Short: "List, inspect, approve, reject, cancel and roll back ITIL changes on the coordinator",
		Long: `Every change to production behaviour is a change record on the Gaia
coordinator: new -> assess -> authorize -> scheduled -> implement -> review ->
closed (or canceled). Standard changes inside the policy are pre-authorized;
normal changes need an approver; emergency changes apply at once and need a
post-implementation review (approve them again once implemented).

Directives are proposed with "lbsys directive propose".`,
	}
	cmd.AddCommand(newChangeListCmd(), newChangeShowCmd(),
		newChangeDecisionCmd("approve", "Approve a change awaiting authorization, or close one after its post-implementation review"),
		newChangeDecisionCmd("reject", "Reject a change awaiting authorization"),
		newChangeDecisionCmd("cancel", "Cancel a change that is not implemented yet"),
		newChangeRollbackCmd())
	return cmd
}

func newChangeListCmd() *cobra.Command {
	var cf clientFlags
	var state string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List changes, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := cf.client()
			if err != nil {
				return err
			}
			defer cancel()
			cs, err := c.Changes(ctx, state, limit)
			if err != nil {
				return apiError(err)
			}
			if cf.json {
				printJSON(cmd.OutOrStdout(), cs)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tVERSION\tOUTCOME\tREQUESTER\tUPDATED\tREASON")
			for _, c := range cs {
				v := "-"
				if c.Version != 0 {
					v = strconv.FormatUint(c.Version, 10)
				}
				o := string(c.Outcome)
				if o == "" {
					o = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Type, c.State, v, o, c.Requester, c.UpdatedAt.UTC().Format(time.RFC3339), oneLine(c.Reason, 60))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&state, "state", "", "only changes in this state (new, assess, authorize, scheduled, implement, review, closed, canceled) or open")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many")
	return cmd
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func newChangeShowCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a change: its state, assessment, approvals, diff and audit trail",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			c, ctx, cancel, err := cf.client()
			if err != nil {
				return err
			}
			defer cancel()
			v, err := c.Change(ctx, id)
			if err != nil {
				return apiError(err)
			}
			if cf.json {
				printJSON(cmd.OutOrStdout(), v)
				return nil
			}
			printChange(cmd.OutOrStdout(), v.Change)
			w := cmd.OutOrStdout()
			if a := v.Assessment; a != nil {
				fmt.Fprintf(w, "assessment: %d difference(s) from version %d; largest weight move %s; blessed %v; within standard policy %v\n",
					a.Changes, a.Against, pctString(a.MaxWeightMovePercent), a.Blessed, a.WithinPolicy)
				for _, n := range a.Notes {
					fmt.Fprintf(w, "  - %s\n", n)
				}
			}
			for _, ap := range v.Approvals {
				fmt.Fprintf(w, "approval (%s): %s at %s: %s\n", ap.Stage, ap.Who, ap.At.UTC().Format(time.RFC3339), ap.Reason)
			}
			fmt.Fprintf(w, "diff:\n%s", indent(directive.FormatDiff(v.Diff)))
			fmt.Fprintln(w, "audit:")
			for _, a := range v.Audit {
				move := a.Event
				if a.Event == "transition" {
					move = fmt.Sprintf("%s -> %s", orDash(string(a.From)), a.To)
				}
				fmt.Fprintf(w, "  %s  %-24s %-8s %s\n", a.At.UTC().Format("2006-01-02T15:04:05.000Z"), move, a.Who, a.Why)
			}
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func printChange(w io.Writer, c *fsm.Change) {
	fmt.Fprintf(w, "change %d (%s): %s", c.ID, c.Type, c.State)
	if c.Outcome != "" {
		fmt.Fprintf(w, ", %s", c.Outcome)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "requested by %s at %s: %s\n", c.Requester, c.CreatedAt.UTC().Format(time.RFC3339), c.Reason)
	if c.Version != 0 {
		fmt.Fprintf(w, "version %d (on top of %d)", c.Version, c.Base)
		if c.RollbackOf != 0 || c.RollbackFor != 0 {
			fmt.Fprintf(w, ", restoring version %d", c.RollbackOf)
		}
		fmt.Fprintln(w)
	}
	if !c.NotBefore.IsZero() {
		fmt.Fprintf(w, "not before %s\n", c.NotBefore.UTC().Format(time.RFC3339))
	}
	if c.Detail != "" {
		fmt.Fprintf(w, "detail: %s\n", c.Detail)
	}
	if c.RolledBackBy != 0 {
		fmt.Fprintf(w, "rolled back by change %d\n", c.RolledBackBy)
	}
}

func pctString(p float64) string {
	if p < 0 {
		return "unbounded (from weight 0)"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	return b.String()
}

func newChangeDecisionCmd(action, short string) *cobra.Command {
	var cf clientFlags
	var reason string
	cmd := &cobra.Command{
		Use:   action + " ID --reason TEXT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("--reason is required: it goes into the audit log")}
			}
			c, ctx, cancel, err := cf.client()
			if err != nil {
				return err
			}
			defer cancel()
			ch, err := c.Decide(ctx, id, action, reason)
			if err != nil {
				return apiError(err)
			}
			if cf.json {
				printJSON(cmd.OutOrStdout(), ch)
				return nil
			}
			printChange(cmd.OutOrStdout(), ch)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	return cmd
}

func newChangeRollbackCmd() *cobra.Command {
	var cf clientFlags
	var reason, typ, key string
	var toVersion uint64
	cmd := &cobra.Command{
		Use:   "rollback [CHANGE-ID] [--to-version N] --reason TEXT",
		Short: "Roll back: a new change restoring the version before CHANGE-ID, or version N",
		Long: `A rollback is itself a change: it creates a new directive version (versions
only grow) with the content of the version before CHANGE-ID, or of --to-version.
It is an emergency change by default (applied at once to every proxy,
post-implementation review required); --type normal makes it wait for an
approver and go through the canary.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := client.RollbackRequest{ToVersion: toVersion, Type: fsm.Type(typ), Reason: reason, IdempotencyKey: key}
			if len(args) == 1 {
				id, err := parseID(args[0])
				if err != nil {
					return err
				}
				req.Change = id
			}
			if (req.Change == 0) == (toVersion == 0) {
				return usageError{errors.New("give either a change ID or --to-version N")}
			}
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("--reason is required: it goes into the audit log")}
			}
			c, ctx, cancel, err := cf.client()
			if err != nil {
				return err
			}
			defer cancel()
			ch, err := c.Rollback(ctx, req)
			if err != nil {
				return apiError(err)
			}
			if cf.json {
				printJSON(cmd.OutOrStdout(), ch)
				return nil
			}
			printChange(cmd.OutOrStdout(), ch)
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.Uint64Var(&toVersion, "to-version", 0, "restore this version's content")
	f.StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	f.StringVar(&typ, "type", "emergency", "change type: emergency, normal or standard")
	f.StringVar(&key, "idempotency-key", "", "a retry with the same key returns the first rollback instead of making another")
	return cmd
}
