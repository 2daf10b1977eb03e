package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/internal/gaia/changetext"
	"github.com/lbsys/lbsys/internal/gaia/client"
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
	f.DurationVar(&cf.timeout, "timeout", 15*time.Second, "give up after this long (retries through the members until then, e.g. while a new leader is elected)")
	f.BoolVar(&cf.json, "json", false, "print the coordinator's JSON answer")
}

func (cf *clientFlags) client() (*client.Client, context.Context, context.CancelFunc, error) {
	token, err := client.Token(cf.tokenFile)
	if err != nil {
		return nil, nil, nil, usageError{fmt.Errorf("--token-file: %w", err)}
	}
	if token == "" {
		return nil, nil, nil, usageError{errors.New("no token: pass --token-file or set LBSYS_TOKEN")}
	}
	urls, err := client.ParseURLs(cf.urls)
	if err != nil {
		return nil, nil, nil, usageError{fmt.Errorf("--coordinator %w", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	return client.New(urls, token), ctx, cancel, nil
}

// readTokenFile reads a token file (its first line).
func readTokenFile(path string) (string, error) { return client.ReadTokenFile(path) }

// apiError maps the coordinator's refusals to exit codes: bad input
// (400, 422) is a usage error (2), the rest a failure (1). A write that may
// have been applied without a confirmation says so, with its key and how
// to check or retry safely.
func apiError(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && (ce.Status == 400 || ce.Status == 422) {
		return usageError{err}
	}
	return changetext.UnknownOutcome(err)
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
			return changetext.WriteList(cmd.OutOrStdout(), cs)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&state, "state", "", "only changes in this state (new, assess, authorize, scheduled, implement, review, closed, canceled) or open")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many")
	return cmd
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
			changetext.WriteView(cmd.OutOrStdout(), v)
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newChangeDecisionCmd(action, short string) *cobra.Command {
	var cf clientFlags
	var reason, key string
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
			if key == "" {
				key = client.NewKey()
			}
			ch, err := c.Decision(ctx, id, action, change.DecisionRequest{Reason: reason, IdempotencyKey: key})
			if err != nil {
				return apiError(err)
			}
			if cf.json {
				printJSON(cmd.OutOrStdout(), ch)
				return nil
			}
			changetext.WriteChange(cmd.OutOrStdout(), ch)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "retry a decision whose outcome was unknown: the same key returns the change instead of deciding twice (default: a new random key)")
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
			req := change.RollbackRequest{ToVersion: toVersion, Type: change.Type(typ), Reason: reason, IdempotencyKey: key}
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
			if req.IdempotencyKey == "" {
				req.IdempotencyKey = client.NewKey()
			}
			ch, err := c.Rollback(ctx, req)
			if err != nil {
				return apiError(err)
			}
			if cf.json {
				printJSON(cmd.OutOrStdout(), ch)
				return nil
			}
			changetext.WriteChange(cmd.OutOrStdout(), ch)
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.Uint64Var(&toVersion, "to-version", 0, "restore this version's content")
	f.StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	f.StringVar(&typ, "type", "emergency", "change type: emergency, normal or standard")
	f.StringVar(&key, "idempotency-key", "", "a retry with the same key returns the first rollback instead of making another (default: a new random key)")
	return cmd
}
