// Package pipeline imports the coordinator's state machine (rule
// proposers) and its client (allowed).
package pipeline

import (
	_ "example.com/planted/internal/gaia/client"
	_ "example.com/planted/internal/gaia/fsm"
)
