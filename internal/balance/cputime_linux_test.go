//go:build linux

package balance

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time the calling OS thread has used. On a
// shared machine a benchmark's wall time counts the time other processes
// hold the CPU; this does not, so its per-op figure is comparable between
// runs.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD, missing from package syscall
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
