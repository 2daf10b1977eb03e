//go:build !linux

package balance

import "time"

// threadCPU is only implemented on Linux; elsewhere benchmarks report wall
// time only.
func threadCPU() (time.Duration, bool) { return 0, false }
