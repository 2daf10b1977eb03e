// Command lbsys is the single binary of the lbsys load balancer: every part
// of the system is a subcommand. This file only wires them together.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
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
	root.AddCommand(newProxyCmd(), newVersionCmd(), newLoadCmd(), newShopCmd(), newDemoCmd(), newIngestCmd(), newForecastCmd(), newCoordinatorCmd(), newChangeCmd(), newDirectiveCmd(), newPipelineCmd(), newSimCmd())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return root
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
