package flowservice

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Adobe documents no Flow Service rate limit, yet Adobe I/O's gateway
// answers 429 with Retry-After when a Developer Console project (a
// credential) sends too much. The client therefore finds the limit instead
// of guessing it: each credential's token bucket (golang.org/x/time/rate)
// has its rate set by an AIMD controller, as TCP congestion control and the
// AWS SDKs' adaptive retry mode do. docs/performance.md explains the choice
// of constants below.
const (
	// AdaptiveInitialQPS is the rate a credential starts at (or the ceiling,
	// when lower).
	AdaptiveInitialQPS = 10.0
	// AdaptiveMinQPS is the floor: a credential is never slowed below it.
	AdaptiveMinQPS = 0.5
	// AdaptiveDecrease is the multiplicative decrease (β): on a 429 the rate
	// becomes β × min(rate, what Adobe accepted over the last second).
	AdaptiveDecrease = 0.8
	// AdaptiveIncrease is the additive increase (α) in calls/s per second
	// while the credential uses its rate, at least; AdaptiveIncreaseShare of
	// the rate per second when that is more (large limits are found as fast,
	// in relative terms, as small ones).
	AdaptiveIncrease      = 0.5
	AdaptiveIncreaseShare = 0.02
	// adaptiveBusyShare: the rate grows only while at least this share of it
	// is used (over the last second), so an idle credential does not climb
	// to the ceiling and then burst into a limit it had already found.
	adaptiveBusyShare = 0.5
	// adaptiveWindow is over how long accepted calls are counted, in
	// adaptiveBuckets buckets.
	adaptiveWindow  = time.Second
	adaptiveBuckets = 10
)

// AIMD decides a credential's rate from how Adobe answers. It holds no
// clock: every method takes the time of the event, so it is deterministic
// (unit tests drive it with made-up times). It is not safe for concurrent
// use; AdaptiveLimiter serialises it.
//
// Phases: slow start doubles the rate every second until the first 429 (or
// the ceiling); after that, additive increase while calls succeed and the
// rate is in use, multiplicative decrease on a 429. One decrease per
// congestion event: a 429 answering a call sent before the last decrease
// tells nothing new and is ignored. A 429 met with little traffic drops the
// rate to what was used, and slow start (up to a threshold, TCP's ssthresh)
// brings it back once there is work.
type AIMD struct {
	// Ceiling is the rate never exceeded (--adobe-qps).
	Ceiling float64
	// Floor is the rate never gone under; zero means AdaptiveMinQPS (or the
	// ceiling, when lower).
	Floor float64

	rate      float64
	slowStart bool
	// threshold: after a 429, the rate regrows by slow start up to here (β ×
	// the rate when the 429 came), then additively, as TCP's ssthresh.
	threshold    float64
	last         time.Time // last increase computed up to here
	lastDecrease time.Time
	// accepted counts answered (non-429) calls per bucket of the window,
	// ending at bucketEnd.
	accepted  [adaptiveBuckets]int
	bucketEnd time.Time
	decreases int
}

// NewAIMD starts a controller at min(AdaptiveInitialQPS, ceiling), in slow
// start.
func NewAIMD(ceiling float64) *AIMD {
	a := &AIMD{Ceiling: ceiling}
	a.rate = min(AdaptiveInitialQPS, ceiling)
	a.slowStart = a.rate < ceiling
	return a
}

// Rate is the current rate in calls per second.
func (a *AIMD) Rate() float64 { return a.rate }

// SlowStart says whether no 429 was seen yet.
func (a *AIMD) SlowStart() bool { return a.slowStart }

// Decreases counts the congestion events (429s acted upon).
func (a *AIMD) Decreases() int { return a.decreases }

func (a *AIMD) floor() float64 {
	f := a.Floor
	if f <= 0 {
		f = AdaptiveMinQPS
	}
	return min(f, a.Ceiling)
}

// advance moves the window of accepted calls up to now.
func (a *AIMD) advance(now time.Time) {
	step := adaptiveWindow / adaptiveBuckets
	if a.bucketEnd.IsZero() {
		a.bucketEnd = now.Add(step)
		return
	}
	for n := 0; !now.Before(a.bucketEnd) && n <= adaptiveBuckets; n++ {
		copy(a.accepted[:], a.accepted[1:])
		a.accepted[adaptiveBuckets-1] = 0
		a.bucketEnd = a.bucketEnd.Add(step)
	}
	if !now.Before(a.bucketEnd) { // idle for longer than the window
		a.bucketEnd = now.Add(step)
	}
}

// acceptedRate is the calls per second Adobe answered without a 429 over
// the last window.
func (a *AIMD) acceptedRate() float64 {
	n := 0
	for _, c := range a.accepted {
		n += c
	}
	return float64(n) / adaptiveWindow.Seconds()
}

// Accepted records a call answered without a 429 at now, and grows the rate
// by the time since the last growth when the rate is in use. It returns the
// new rate.
func (a *AIMD) Accepted(now time.Time) float64 {
	a.advance(now)
	a.accepted[adaptiveBuckets-1]++
	if a.last.IsZero() || now.Before(a.last) {
		a.last = now
		return a.rate
	}
	dt := now.Sub(a.last).Seconds()
	a.last = now
	if a.rate >= a.Ceiling || a.acceptedRate() < adaptiveBusyShare*a.rate {
		return a.rate
	}
	switch {
	case a.slowStart:
		a.rate *= math.Exp2(dt)
	case a.rate < a.threshold:
		a.rate = min(a.rate*math.Exp2(dt), a.threshold)
	default:
		a.rate += max(AdaptiveIncrease, AdaptiveIncreaseShare*a.rate) * dt
	}
	if a.rate >= a.Ceiling {
		a.rate = a.Ceiling
		a.slowStart = false
	}
	return a.rate
}

// Throttled records a 429 at now for a call sent at sentAt, and returns the
// new rate and whether it decreased.
func (a *AIMD) Throttled(now, sentAt time.Time) (float64, bool) {
	a.advance(now)
	if !a.lastDecrease.IsZero() && sentAt.Before(a.lastDecrease) {
		return a.rate, false
	}
	// Busy (the rate in use): what Adobe accepted is what it allows, and
	// the rate restarts from β × that. Not busy (few calls, a 429 anyway: the
	// credential's quota is shared with something else): the rate drops to
	// β × the calls actually made, and slow start takes it back to β × the
	// old rate once there is work.
	acc := a.acceptedRate()
	busy := acc >= adaptiveBusyShare*a.rate
	base := a.rate
	if acc > 0 && acc < base {
		base = acc
	}
	a.threshold = max(a.floor(), AdaptiveDecrease*base)
	if !busy {
		a.threshold = max(a.floor(), AdaptiveDecrease*a.rate)
	}
	a.rate = max(a.floor(), AdaptiveDecrease*base)
	a.slowStart = false
	a.lastDecrease = now
	a.last = now
	a.decreases++
	return a.rate, true
}

// Observer is told how each request a Limiter let through was answered.
// AdaptiveLimiter implements it; the client calls it when its limiter does.
type Observer interface {
	// Observe reports one answer: sentAt is when the request left, throttled
	// is true for a 429.
	Observe(sentAt time.Time, throttled bool)
}

// AdaptiveLimiter is a token bucket whose rate an AIMD controller sets from
// Adobe's answers. Its burst is one second of the current rate, within
// [1, maxBurst]. Safe for concurrent use.
type AdaptiveLimiter struct {
	mu       sync.Mutex
	aimd     *AIMD
	lim      *rate.Limiter
	maxBurst int
	now      func() time.Time
	onChange func(qps float64)
}

// NewAdaptiveLimiter builds a limiter that never exceeds ceiling calls/s nor
// a burst of maxBurst. onChange, when set, is told every new rate.
func NewAdaptiveLimiter(ceiling float64, maxBurst int, now func() time.Time, onChange func(qps float64)) *AdaptiveLimiter {
	if now == nil {
		now = time.Now
	}
	a := NewAIMD(ceiling)
	l := &AdaptiveLimiter{aimd: a, maxBurst: max(maxBurst, 1), now: now, onChange: onChange}
	l.lim = rate.NewLimiter(rate.Limit(a.Rate()), l.burstFor(a.Rate()))
	if onChange != nil {
		onChange(a.Rate())
	}
	return l
}

func (l *AdaptiveLimiter) burstFor(qps float64) int {
	return min(max(int(qps), 1), l.maxBurst)
}

// Wait blocks until the bucket lets one call through.
func (l *AdaptiveLimiter) Wait(ctx context.Context) error { return l.lim.Wait(ctx) }

// Rate is the current rate in calls per second.
func (l *AdaptiveLimiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.aimd.Rate()
}

// Observe feeds one answer to the controller and applies the new rate.
func (l *AdaptiveLimiter) Observe(sentAt time.Time, throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	before := l.aimd.Rate()
	var after float64
	if throttled {
		after, _ = l.aimd.Throttled(now, sentAt)
	} else {
		after = l.aimd.Accepted(now)
	}
	if after == before {
		return
	}
	l.lim.SetLimitAt(now, rate.Limit(after))
	l.lim.SetBurstAt(now, l.burstFor(after))
	if l.onChange != nil {
		l.onChange(after)
	}
}
