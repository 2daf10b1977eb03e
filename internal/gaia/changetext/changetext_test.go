package changetext

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/internal/gaia/client"
)

var at = time.Date(2026, 11, 27, 11, 2, 3, 0, time.UTC)

func TestWriteChange(t *testing.T) {
	cases := []struct {
		name string
		c    change.Change
		want string
	}{
		{"proposed", change.Change{ID: 8, Type: change.Normal, State: change.Authorize, Requester: "alice", Reason: "sale", CreatedAt: at},
			"change 8 (normal): authorize\nrequested by alice at 2026-11-27T11:02:03Z: sale\n"},
		{"rolled back rollback", change.Change{ID: 9, Type: change.Emergency, State: change.Review, Outcome: change.Success, Requester: "carol",
			Reason: "p99", CreatedAt: at, Version: 5, Base: 4, RollbackOf: 3, RollbackFor: 7, Detail: "live", RolledBackBy: 10},
			"change 9 (emergency): review, success\nrequested by carol at 2026-11-27T11:02:03Z: p99\nversion 5 (on top of 4), restoring version 3\ndetail: live\nrolled back by change 10\n"},
	}
	for _, tc := range cases {
		var b strings.Builder
		WriteChange(&b, &tc.c)
		if b.String() != tc.want {
			t.Errorf("%s:\n%q\nwant\n%q", tc.name, b.String(), tc.want)
		}
	}
}

func TestWriteNext(t *testing.T) {
	cases := []struct {
		c    change.Change
		want string
	}{
		{change.Change{ID: 1, State: change.Authorize}, "next: an approver runs `lbsys change approve 1 --reason ...`\n"},
		{change.Change{ID: 2, State: change.Implement, Version: 6}, "directive version 6 is rolling out; watch it with `lbsys change show 2`\n"},
		{change.Change{ID: 3, State: change.Review, Type: change.Emergency, Outcome: change.Success}, "next: after the post-implementation review, `lbsys change approve 3 --reason ...` closes it\n"},
		{change.Change{ID: 4, State: change.Closed}, ""},
	}
	for _, tc := range cases {
		var b strings.Builder
		WriteNext(&b, &tc.c)
		if b.String() != tc.want {
			t.Errorf("change %d: %q, want %q", tc.c.ID, b.String(), tc.want)
		}
	}
}

func TestWriteListCutsReasons(t *testing.T) {
	var b strings.Builder
	WriteList(&b, []change.ChangeSummary{{ID: 1, Type: change.Normal, State: change.Closed, Requester: "a", UpdatedAt: at,
		Reason: strings.Repeat("long reason ", 10)}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID  TYPE") || !strings.HasSuffix(lines[1], "…") || !strings.Contains(lines[1], "-        -") {
		t.Errorf("list:\n%s", b.String())
	}
}

func TestUnknownOutcome(t *testing.T) {
	plain := errors.New("409: change 7 is in state implement")
	if UnknownOutcome(plain) != plain {
		t.Error("another error is not returned as it is")
	}
	err := UnknownOutcome(&client.UnknownOutcomeError{Method: "POST", Path: "/v1/changes", Attempts: 3, Key: "k-1", Err: errors.New("EOF")})
	for _, want := range []string{"outcome unknown", "POST /v1/changes", "sent 3 time(s)", "idempotency key: k-1", "--idempotency-key k-1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if err := UnknownOutcome(&client.UnknownOutcomeError{Method: "POST", Path: "/x", Err: errors.New("EOF")}); strings.Contains(err.Error(), "idempotency") {
		t.Errorf("no key, yet: %v", err)
	}
}
