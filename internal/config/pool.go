package config

import "github.com/lbsys/lbsys/internal/health"

// PoolConfig is the health pool configuration of a (defaulted) health
// section: what the proxy and the simulator both build a service's
// internal/health.Pool with.
func (h *Health) PoolConfig() health.Config {
	var c health.Config
	if h.Active != nil {
		c.HealthyThreshold = h.Active.HealthyThreshold
		c.UnhealthyThreshold = h.Active.UnhealthyThreshold
	}
	o := h.Outlier
	if !o.Disabled {
		c.OutlierEnabled = true
		if o.Consecutive5xx != nil {
			c.Consecutive5xx = *o.Consecutive5xx
		}
		if o.ConsecutiveGatewayFailure != nil {
			c.ConsecutiveGatewayFailure = *o.ConsecutiveGatewayFailure
		}
		c.BaseEjectionTime = o.BaseEjectionTime
		c.MaxEjectionTime = o.MaxEjectionTime
		if o.MaxEjectionPercent != nil {
			c.MaxEjectionPercent = *o.MaxEjectionPercent
		}
	}
	if h.PanicThreshold != nil {
		c.PanicThreshold = *h.PanicThreshold
	}
	if s := h.SlowStart; s != nil {
		c.SlowStartWindow = s.Window
		c.SlowStartAggression = s.Aggression
		c.SlowStartMinPercent = s.MinWeightPercent
	}
	return c
}
