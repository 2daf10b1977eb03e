//go:build race

package sim

// raceEnabled: the race detector slows the simulator about 25× (every
// atomic operation in the decision code is instrumented), so validations
// run at a reduced size under -race. They stay deterministic (fixed seeds).
const raceEnabled = true
