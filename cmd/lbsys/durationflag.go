package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/lbsys/lbsys/internal/textutil"
)

// durationValue is a duration flag that also reads days and weeks ("1d",
// "2w", "1d12h"; textutil.ParseDuration), so that a horizon or a run
// length can be written the way people say it. Everything pflag's own
// duration flag accepts it accepts with the same value.
type durationValue time.Duration

// durationVar defines a duration flag on f, like f.DurationVar.
func durationVar(f *pflag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	f.Var((*durationValue)(p), name, usage)
}

// Set implements pflag.Value.
func (d *durationValue) Set(s string) error {
	v, err := textutil.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

// Type implements pflag.Value; "duration" also makes --help omit a zero
// default, as for pflag's own duration flags.
func (d *durationValue) Type() string { return "duration" }

// String implements pflag.Value (the default shown by --help).
func (d *durationValue) String() string { return time.Duration(*d).String() }
