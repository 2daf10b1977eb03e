// Package scaler decides replica floors ahead of load: the predictive
// half of lbsys's autoscaling. It is pure decision code (DESIGN.md
// principle 2): no I/O, no clock, no randomness; the simulator and the
// live controller call it with the same inputs and get the same answer.
//
// The division of labour with the reactive autoscaler (the Kubernetes HPA
// in production, its faithful model in internal/sim) is deliberate: this
// package only ever raises the autoscaler's minimum. It never scales in on
// a forecast alone — when a floor lapses, the reactive side scales in at
// its own pace (its stabilisation window) on measured utilisation — and
// when load runs far above what was forecast it says so and leaves the
// lead to the reactive side, which sees the load itself.
//
// # The rule
//
// For a service with per-replica capacity c (requests per second at full
// utilisation, learned from telemetry by Capacity) and a startup lead L
// (pod start plus node provisioning, learned from observed pod starts by
// Lead, plus warm-up), the floor at time now is
//
//	floor = max( ⌈ max_{t ∈ [now, now+L]} point(t)  / (c · u·(1+tol)) ⌉,
//	             ⌈ max_{t ∈ [now, now+L+M]} event(t) / (c · uₑ) ⌉ )
//
// where point is the forecaster's point path, u the autoscaler's target
// utilisation and tol its tolerance, event the upper estimate of the load
// of announced events (the larger of the forecaster's upper band inside
// the event and the seasonal baseline times the upper uplift learned from
// past events of the category), uₑ the utilisation events are sized at
// (by default u: the capacity the autoscaling policy asks for at the
// event's peak, ready before it), and M the readiness margin. Outside events the floor never
// asks for more than the reactive autoscaler would hold in steady state
// (it scales only beyond u·(1+tol)), so on a day without events it costs
// nothing; inside the look-ahead of an announced event it asks for the
// event's capacity M before the event starts, counting the time a replica
// needs to become ready.
//
// Peers (peers.go) are built the same way from their public descriptions,
// so that the simulator compares like with like: a Holt-Winters
// predictive HPA (the open-source predictive-horizontal-pod-autoscaler's
// approach) and an AWS-predictive-scaling-style hourly plan.
package scaler
