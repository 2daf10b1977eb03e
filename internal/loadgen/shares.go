package loadgen

// ServiceShares is, per shop service, the requests it receives through
// the proxy per request a session sends, in expectation: the funnel's
// steps (browse: a catalog list and a search in a quarter of sessions;
// product: a catalog product and its stock; cart: the cart and an add;
// checkout: the checkout) and the checkout's own calls through the proxy
// (the cart, an inventory reserve, the payment, an inventory commit). The
// demo's controller reads its history per service through it.
func (f Funnel) ServiceShares() map[string]float64 {
	per := f.ServiceRequests()
	n := f.ExpectedRequests()
	for k := range per {
		per[k] /= n
	}
	return per
}

// ServiceRequests is, per shop service, the requests a session causes
// through the proxy in expectation (ServiceShares before it is divided
// by the session's own requests): what a window's funnel (HotSet.Funnel)
// does to each service's rate when the sessions' start rate stays.
func (f Funnel) ServiceRequests() map[string]float64 {
	return map[string]float64{
		"catalog":   f[StepBrowse]*requestsPerStep[StepBrowse] + f[StepProduct],
		"inventory": f[StepProduct] + 2*f[StepCheckout],
		"cart":      f[StepCart]*requestsPerStep[StepCart] + f[StepCheckout],
		"checkout":  f[StepCheckout],
		"payment":   f[StepCheckout],
	}
}
