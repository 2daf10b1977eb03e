// Package changetext writes the coordinator's change records for people:
// what `lbsys change` and `lbsys directive` print (a change, the list of
// changes, one change with its assessment, approvals, diff and audit, the
// next step after a proposal, and an "outcome unknown" with how to check
// and retry safely).
package changetext

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/client"
)

// WriteChange writes a change's header: ID, type, state and outcome, who
// asked and why, the version it made, its schedule, detail and rollback.
func WriteChange(w io.Writer, c *change.Change) {
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

// WriteList writes the changes as a table, one line each (reasons cut to
// 60 characters).
func WriteList(w io.Writer, cs []change.ChangeSummary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
}

// WriteView writes one change in full: its header, the assessment, the
// approvals, the diff from the version it was assessed against and the
// audit trail.
func WriteView(w io.Writer, v *change.ChangeView) {
	WriteChange(w, v.Change)
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
}

// WriteNext says what happens next to a change just proposed: an approver
// must approve it, it is rolling out, or an emergency change awaits its
// post-implementation review.
func WriteNext(w io.Writer, ch *change.Change) {
	switch ch.State {
	case change.Authorize:
		fmt.Fprintf(w, "next: an approver runs `lbsys change approve %d --reason ...`\n", ch.ID)
	case change.Implement:
		fmt.Fprintf(w, "directive version %d is rolling out; watch it with `lbsys change show %d`\n", ch.Version, ch.ID)
	case change.Review:
		if ch.Type == change.Emergency && ch.Outcome == change.Success {
			fmt.Fprintf(w, "next: after the post-implementation review, `lbsys change approve %d --reason ...` closes it\n", ch.ID)
		}
	}
}

// UnknownOutcome explains a write that may have been applied although no
// answer confirmed it: what was sent, and, when it carried an idempotency
// key, how to check and how to retry safely. Other errors are returned as
// they are.
func UnknownOutcome(err error) error {
	var u *client.UnknownOutcomeError
	if !errors.As(err, &u) {
		return err
	}
	msg := fmt.Sprintf("outcome unknown: the coordinator may have applied this %s %s, but no answer confirmed it before --timeout (sent %d time(s); last error: %v)", u.Method, u.Path, u.Attempts, u.Err)
	if u.Key != "" {
		msg += fmt.Sprintf("\n  idempotency key: %s\n  check: lbsys change list --state open (or lbsys change show ID)\n  retry safely: run the same command again with --idempotency-key %s (a coordinator that applied it answers with the same change)", u.Key, u.Key)
	}
	return errors.New(msg)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
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
