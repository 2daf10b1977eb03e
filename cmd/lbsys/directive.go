package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/changetext"
	"github.com/lbsys/lbsys/internal/gaia/client"
)

func newDirectiveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "directive",
		Short: "Get, propose, validate and diff directives (weights, ramps, admission, cache hints, scale)",
		Long: `A directive is the whole desired state the coordinator streams to every proxy:
per service, endpoint weights, slow-start ramps, admission seed and bounds,
cache warm list and TTL hints, a scale recommendation, and why (the forecast
and features behind it). The schema is in docs/coordinator.md.`,
	}
	cmd.AddCommand(newDirectiveGetCmd(), newDirectiveProposeCmd(), newDirectiveValidateCmd(), newDirectiveDiffCmd())
	return cmd
}

func newDirectiveGetCmd() *cobra.Command {
	var cf clientFlags
	var version uint64
	var stale bool
	cmd := &cobra.Command{
		Use:   "get [--version N]",
		Short: "Print the stable directive (or version N) as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := cf.client()
			if err != nil {
				return err
			}
			defer cancel()
			d, err := c.Directive(ctx, version, stale)
			if err != nil {
				return apiError(err)
			}
			printJSON(cmd.OutOrStdout(), d)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().Uint64Var(&version, "version", 0, "this version instead of the stable one")
	cmd.Flags().BoolVar(&stale, "stale", false, "read from whichever member answers, without asking the leader (may lag)")
	return cmd
}

// readDirectiveFile reads a directive from a file ("-": standard input).
func readDirectiveFile(path string) ([]byte, error) {
	if path == "" {
		return nil, usageError{errors.New("--file is required (use - for standard input)")}
	}
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, directive.MaxBytes+1))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usageError{err}
	}
	return b, nil
}

func newDirectiveProposeCmd() *cobra.Command {
	var cf clientFlags
	var file, typ, reason, notBefore, key string
	var noCanary bool
	var ifStable uint64
	cmd := &cobra.Command{
		Use:   "propose --file directive.json --type normal --reason TEXT",
		Short: "Propose a directive as an ITIL change",
		Long: `Propose a directive as a change. Types: standard (pre-authorized when inside
the policy: weight moves bounded, models blessed; refused otherwise), normal
(waits for an approver: lbsys change approve ID), emergency (applied to every
proxy at once; needs the approver role; post-implementation review after).

The file is checked here first; the coordinator checks it again.
Exit code 2 when the directive is invalid or the change was refused by the
standard-change policy, 1 when the coordinator could not commit it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := readDirectiveFile(file)
			if err != nil {
				return err
			}
			d, err := directive.Parse(b)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", file, err)}
			}
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("--reason is required: it goes into the audit log")}
			}
			req := change.ProposeRequest{Type: change.Type(typ), Reason: reason, Directive: d.Content(), NoCanary: noCanary, IdempotencyKey: key, IfStable: ifStable}
			if notBefore != "" {
				t, err := time.Parse(time.RFC3339, notBefore)
				if err != nil {
					return usageError{fmt.Errorf("--not-before: want RFC 3339 such as 2026-11-27T11:30:00Z: %v", err)}
				}
				req.NotBefore = t
			}
			c, ctx, cancel, err := cf.client()
			if err != nil {
				return err
			}
			defer cancel()
			if req.IdempotencyKey == "" {
				// One key per invocation: the client re-sends the proposal
				// after a lost answer, and the coordinator returns the
				// first change instead of making a second.
				req.IdempotencyKey = client.NewKey()
			}
			ch, err := c.Propose(ctx, req)
			if err != nil {
				return apiError(err)
			}
			if cf.json {
				printJSON(cmd.OutOrStdout(), ch)
			} else {
				changetext.WriteChange(cmd.OutOrStdout(), ch)
				changetext.WriteNext(cmd.OutOrStdout(), ch)
			}
			if ch.State == change.Canceled {
				return usageError{fmt.Errorf("change %d refused: %s", ch.ID, ch.Detail)}
			}
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "directive JSON (- for standard input)")
	f.StringVar(&typ, "type", "normal", "change type: standard, normal or emergency")
	f.StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	f.StringVar(&notBefore, "not-before", "", "implement no earlier than this RFC 3339 time (standard and normal changes)")
	f.BoolVar(&noCanary, "no-canary", false, "roll out to every proxy at once instead of a canary first")
	f.StringVar(&key, "idempotency-key", "", "a retry with the same key returns the first change instead of making another (default: a new random key per run; give the one an \"outcome unknown\" error printed to retry safely)")
	f.Uint64Var(&ifStable, "if-stable", 0, "only if the stable version is N, and is still N when the change's turn comes (else refused, or canceled as stale): a directive edited from version N then never overwrites a later one")
	return cmd
}

func newDirectiveValidateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate --file directive.json",
		Short: "Check a directive file offline (exit 0 valid, 2 invalid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := readDirectiveFile(file)
			if err != nil {
				return err
			}
			d, err := directive.Parse(b)
			if err != nil {
				var ve *directive.ValidationError
				if errors.As(err, &ve) {
					for _, fe := range ve.Errors {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", file, fe)
					}
				}
				return usageError{fmt.Errorf("%s: invalid", file)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (schema %d, %d services)\n", file, d.Schema, len(d.Services))
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "directive JSON (- for standard input)")
	return cmd
}

func newDirectiveDiffCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "diff FROM TO",
		Short: "Show what changes between two directives: each a version number or a file",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ds [2]*directive.Directive
			for i, a := range args {
				if v, err := strconv.ParseUint(a, 10, 64); err == nil {
					if v == 0 {
						ds[i] = nil // the empty directive
						continue
					}
					c, ctx, cancel, err := cf.client()
					if err != nil {
						return err
					}
					d, err := c.Directive(ctx, v, false)
					cancel()
					if err != nil {
						return apiError(err)
					}
					ds[i] = d
					continue
				}
				b, err := readDirectiveFile(a)
				if err != nil {
					return err
				}
				d, err := directive.Parse(b)
				if err != nil {
					return usageError{fmt.Errorf("%s: %w", a, err)}
				}
				ds[i] = d
			}
			diff := directive.Diff(ds[0], ds[1])
			if cf.json {
				printJSON(cmd.OutOrStdout(), diff)
				return nil
			}
			fmt.Fprint(cmd.OutOrStdout(), directive.FormatDiff(diff))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
