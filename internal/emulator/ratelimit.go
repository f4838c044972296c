package emulator

import (
	"errors"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is the server-side limit of Adobe I/O's gateway as the emulator
// plays it: each credential (the x-api-key, that is the Developer Console
// project) gets a token bucket of PerSecond requests a second with a burst
// of Burst; a Platform request beyond it is answered 429 with the gateway's
// error body ({"error_code":"429050","message":"Too many requests"}) and a
// Retry-After in whole seconds, and nothing is done. Adobe publishes no
// figure for Flow Service (shared/reference/aep-api.md §5): the limit is
// the emulator's, for measuring how the operator behaves against one. The
// zero value sets no limit. IMS token requests and the collection inlets
// are not counted.
type RateLimit struct {
	// PerSecond is each credential's sustained rate; zero or less: no limit.
	PerSecond float64 `json:"perSecond,omitempty"`
	// Burst is how many requests may come at once; zero means one second's
	// worth (PerSecond rounded up).
	Burst int `json:"burst,omitempty"`
}

// Validate reports a limit that cannot be honoured.
func (l RateLimit) Validate() error {
	if math.IsNaN(l.PerSecond) || math.IsInf(l.PerSecond, 0) || l.Burst < 0 {
		return errors.New("rate limit: perSecond must be a number and burst must not be negative")
	}
	return nil
}

func (l RateLimit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(int(math.Ceil(l.PerSecond)), 1)
}

// gatewayLimiter holds one bucket per credential.
type gatewayLimiter struct {
	mu      sync.Mutex
	cfg     RateLimit
	buckets map[string]*rate.Limiter
}

func (g *gatewayLimiter) set(l RateLimit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg = l
	g.buckets = map[string]*rate.Limiter{}
}

func (g *gatewayLimiter) get() RateLimit {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// admit takes a token of the credential's bucket at now; when there is
// none, it answers how long until there is one (nothing is taken).
func (g *gatewayLimiter) admit(clientID string, now time.Time) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.PerSecond <= 0 {
		return true, 0
	}
	b := g.buckets[clientID]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(g.cfg.PerSecond), g.cfg.burst())
		g.buckets[clientID] = b
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// retryAfterSeconds rounds a wait up to the whole seconds of Retry-After,
// at least one.
func retryAfterSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// SetRateLimit replaces the server-side rate limit; every bucket starts
// full.
func (e *Emulator) SetRateLimit(l RateLimit) error {
	if err := l.Validate(); err != nil {
		return err
	}
	e.limits.set(l)
	return nil
}

// RateLimit is the server-side rate limit in force.
func (e *Emulator) RateLimit() RateLimit { return e.limits.get() }
