package ims

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// tokenRequests counts IMS token requests by result: success, terminal
// (credential rejected), transient (worth retrying) or error.
var tokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "capillary_ims_token_requests_total",
	Help: "Adobe IMS token requests by result (success, terminal, transient, error).",
}, []string{"result"})

var registerOnce sync.Once

// registerMetrics adds the IMS metrics to controller-runtime's registry, once
// per process however many caches are built (tests build many).
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(tokenRequests)
	})
}
