package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/api/directive"
)

func newExplainCmd() *cobra.Command {
	var (
		cf      clientFlags
		service string
		file    string
		admin   string
		version uint64
	)
	cmd := &cobra.Command{
		Use:   "explain [--service NAME] [--file directive.json | --admin URL | --coordinator URL]",
		Short: "Say why the directive asks what it asks, field by field, for a service",
		Long: `Print, for one service or every service of a directive, each field the
directive sets (replica floor, admission bounds, weights, cache hints) with
its reason: the rule and its figures, the announced event or forecast
behind it, the capacity figure used and the expected effect; then the
forecast evidence (model, upper-band peak, drivers).

The directive comes from a file (--file, "-" for standard input), from a
running proxy's admin listener (--admin http://127.0.0.1:9901: the directive
it runs, with what it does with it now: its /explain page), or from the
coordinator (the stable version, or --version N).

Examples:
  lbsys explain --service catalog --coordinator http://127.0.0.1:7101
  lbsys explain --admin http://127.0.0.1:9901 --service catalog
  lbsys explain --file directive.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" && admin != "" {
				return usageError{errors.New("give --file or --admin, not both")}
			}
			switch {
			case admin != "":
				return explainFromAdmin(cmd.OutOrStdout(), admin, service, cf.timeout)
			case file != "":
				b, err := readDirectiveFile(file)
				if err != nil {
					return err
				}
				d, err := directive.Parse(b)
				if err != nil {
					return usageError{fmt.Errorf("--file %s: %w", file, err)}
				}
				return explainErr(directive.WriteExplanation(cmd.OutOrStdout(), d, service))
			}
			c, ctx, cancel, err := cf.client()
			if err != nil {
				return err
			}
			defer cancel()
			d, err := c.Directive(ctx, version, false)
			if err != nil {
				return apiError(err)
			}
			return explainErr(directive.WriteExplanation(cmd.OutOrStdout(), d, service))
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&service, "service", "", "the service to explain (default: every service of the directive)")
	f.StringVar(&file, "file", "", "read the directive from this file (- for standard input)")
	f.StringVar(&admin, "admin", "", "ask a running proxy's admin listener (its /explain page)")
	f.Uint64Var(&version, "version", 0, "with the coordinator: this version instead of the stable one")
	return cmd
}

// explainErr turns an unknown service into a usage error.
func explainErr(err error) error {
	if err != nil {
		return usageError{err}
	}
	return nil
}

// explainFromAdmin prints a proxy's /explain page.
func explainFromAdmin(w io.Writer, base, service string, timeout time.Duration) error {
	u := strings.TrimRight(base, "/") + "/explain"
	if service != "" {
		u += "?service=" + service
	}
	cl := &http.Client{Timeout: timeout}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return usageError{fmt.Errorf("--admin: %w", err)}
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("--admin %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", u, e.Error)
		}
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = w.Write(body)
	return err
}
