package flowservice

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "capillary_adobe_requests_total",
		Help: "HTTP requests to Adobe Flow Service and Data Prep by operation and status code (\"error\" when no answer came).",
	}, []string{"operation", "code"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "capillary_adobe_request_duration_seconds",
		Help:    "Duration of HTTP requests to Adobe Flow Service and Data Prep by operation.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"operation"})

	rateLimitQPS = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "capillary_adobe_rate_limit_qps",
		Help: "Calls per second the client allows itself to Adobe, per credential (client ID): the adaptive limiter's current rate, or the fixed rate.",
	}, []string{"client_id"})

	registerOnce sync.Once
)

// registerMetrics adds the client's metrics to controller-runtime's registry
// once per process, however many clients are built.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(requestsTotal, requestDuration, rateLimitQPS)
	})
}

func observe(op, code string, d time.Duration) {
	requestsTotal.WithLabelValues(op, code).Inc()
	requestDuration.WithLabelValues(op).Observe(d.Seconds())
}
