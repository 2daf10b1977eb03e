package config

import "github.com/lbsys/lbsys/internal/admission"

// LimiterConfig converts the configuration to the admission package's
// (zero fields take that package's defaults).
func (a *Admission) LimiterConfig() admission.Config {
	return admission.Config{
		MinLimit:       a.MinLimit,
		MaxLimit:       a.MaxLimit,
		InitialLimit:   a.InitialLimit,
		Tolerance:      a.Tolerance,
		Smoothing:      a.Smoothing,
		Window:         a.Window,
		SheddableShare: a.SheddableShare,
		NormalShare:    a.NormalShare,
	}
}
