// Command lbsys is the single binary of the lbsys load balancer: every part
// of the system is a subcommand. This file only wires them together.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lbsys/lbsys/internal/textutil"
)

// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks errors caused by the user's input (flags, config file).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "lbsys",
		Short: "lbsys: a forecast-driven L7 load balancer for e-commerce microservices",
		Long: `lbsys proxies HTTP to backend pools with reactive balancing policies, health
checks, safe retries and session affinity, and exports the telemetry the rest
of the system learns from.

Every part runs from this one binary as a subcommand.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newProxyCmd(), newVersionCmd(), newLoadCmd(), newShopCmd(), newDemoCmd(), newIngestCmd(), newForecastCmd(), newCoordinatorCmd(), newChangeCmd(), newDirectiveCmd(), newPipelineCmd(), newSimCmd(), newExplainCmd(), newDashboardCmd(), newControllerCmd())
	root.SetFlagErrorFunc(flagError)
	suggestSubcommands(root)
	return root
}

// flagError makes a flag error a usage error (exit 2) and, for an unknown
// flag, suggests the closest one the command has: `lbsys sim --policy x`
// says "did you mean --policies?" instead of leaving the user to read the
// whole --help.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && ne.GetSpecifiedShortnames() == "" {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && f.Deprecated == "" {
				names = append(names, f.Name)
			}
		})
		sort.Strings(names)
		if s := closestFlag(ne.GetSpecifiedName(), names); s != "" {
			err = fmt.Errorf("%w (did you mean --%s?)", err, s)
		} else {
			err = fmt.Errorf("%w (%s --help lists the flags)", err, cmd.CommandPath())
		}
	}
	return usageError{err}
}

// closestFlag picks the flag name a mistyped one most likely meant: within
// two edits (--rat → --rate), else the one flag it is the start of
// (--max-err → --max-error-rate), else the one flag that shares all but
// its last letter and is at most three letters longer (a singular for a
// plural: --policy → --policies, which is three edits away). "" when none
// or several fit.
func closestFlag(typed string, names []string) string {
	if s := textutil.Closest(typed, names); s != "" {
		return s
	}
	unique := func(ok func(string) bool) string {
		found := ""
		for _, n := range names {
			if ok(n) {
				if found != "" {
					return ""
				}
				found = n
			}
		}
		return found
	}
	lt := strings.ToLower(typed)
	if len(lt) >= 3 {
		if s := unique(func(n string) bool { return strings.HasPrefix(n, lt) }); s != "" {
			return s
		}
	}
	if len(lt) >= 4 {
		stem := lt[:len(lt)-1]
		return unique(func(n string) bool { return strings.HasPrefix(n, stem) && len(n) > len(lt)-1 && len(n)-len(lt) <= 3 })
	}
	return ""
}

// suggestSubcommands makes every command with subcommands refuse an
// unknown one with a suggestion and exit 2. Cobra does that only for the
// root: below it, `lbsys forecast evl` printed the help and exited 0 (a
// command that only groups others is "not runnable", and its arguments
// are never checked), and a runnable one (`lbsys coordinator init-tsl`)
// said "unknown command" with no hint.
func suggestSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		suggestSubcommands(c)
		if !c.HasSubCommands() {
			continue
		}
		validate := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && (validate == nil || validate(cmd, args) != nil) {
				return unknownSubcommand(cmd, args[0])
			}
			if validate != nil {
				return validate(cmd, args)
			}
			return nil
		}
		if !c.Runnable() {
			// A group: alone it shows its help, as before.
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
}

// unknownSubcommand is the usage error for `lbsys <cmd> <typo>`.
func unknownSubcommand(cmd *cobra.Command, typed string) error {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	hint := fmt.Sprintf("%s --help lists them: %s", cmd.CommandPath(), strings.Join(names, ", "))
	if s := cmd.SuggestionsFor(typed); len(s) > 0 {
		hint = "did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{fmt.Errorf("unknown command %q for %q (%s)", typed, cmd.CommandPath(), hint)}
}

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "lbsys:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		os.Exit(exitUsage)
	}
	os.Exit(exitFailure)
}
