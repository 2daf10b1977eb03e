package balance_test

import (
	"testing"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/balance/balancetest"
)

// Every registered policy passes the conformance suite; a new policy that
// forgets to declare its traits here fails TestEveryPolicyIsCovered.
var traits = map[string]balancetest.Traits{
	"round_robin":   {Proportional: true},
	"random":        {Proportional: true},
	"least_request": {Proportional: true},
	// peak_ewma balances latency × pending, not weights: an endpoint picked
	// less often sees its cost decay and wins more comparisons, so shares
	// drift toward equal (Finagle's intent). weighted_test.go checks what
	// weighted promises about directive weights.
	"peak_ewma": {},
	"weighted":  {},
	"prequal":   {},
	"ring_hash": {},
	"maglev":    {},
}

func TestConformance(t *testing.T) {
	for _, name := range balance.Names() {
		t.Run(name, func(t *testing.T) { balancetest.Run(t, name, traits[name]) })
	}
}

func TestEveryPolicyIsCovered(t *testing.T) {
	for _, name := range balance.Names() {
		if _, ok := traits[name]; !ok {
			t.Errorf("policy %q has no entry in the conformance traits table", name)
		}
	}
}
