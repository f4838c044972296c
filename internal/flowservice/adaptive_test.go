package flowservice

import (
	"math"
	"testing"
	"time"
)

// The AIMD controller is driven with made-up times: no clock, no sleeps.

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// event is one answer fed to the controller: at ms after t0, sent at
// sentMs (for a 429), accepted n times when n > 0.
type event struct {
	ms        int
	throttled bool
	sentMs    int
	n         int // accepted answers at ms (default 1)
}

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// feed plays events into a, accepted answers spread evenly over the
// interval since the previous event (so the window of accepted calls sees a
// steady rate, as it would).
func feed(a *AIMD, evs []event) {
	prev := 0
	for _, e := range evs {
		if e.throttled {
			a.Throttled(at(e.ms), at(e.sentMs))
			prev = e.ms
			continue
		}
		n := max(e.n, 1)
		for i := 1; i <= n; i++ {
			a.Accepted(at(prev + (e.ms-prev)*i/n))
		}
		prev = e.ms
	}
}

func TestAIMD(t *testing.T) {
	// The window of accepted calls starts empty, so the first half second
	// of a run is not yet "busy": growth lags the ideal a little, hence
	// ranges where growth is involved.
	cases := map[string]struct {
		ceiling float64
		// start, when set, skips slow start: the controller is at this rate.
		start            float64
		events           []event
		wantMin, wantMax float64
		wantSlowStart    bool
		wantDecreases    int
	}{
		"starts at the initial rate, in slow start": {
			ceiling: 100, wantMin: AdaptiveInitialQPS, wantMax: AdaptiveInitialQPS, wantSlowStart: true,
		},
		"starts at the ceiling when it is lower, with nothing to find": {
			ceiling: 4, events: []event{{ms: 1000, n: 4}}, wantMin: 4, wantMax: 4,
		},
		"slow start doubles every busy second": {
			// 10/s used for a second, then 20/s for another: 10 → up to 40.
			ceiling: 100, events: []event{{ms: 0}, {ms: 1000, n: 10}, {ms: 2000, n: 20}},
			wantMin: 25, wantMax: 40, wantSlowStart: true,
		},
		"never above the ceiling": {
			ceiling: 25, events: []event{{ms: 0}, {ms: 1000, n: 10}, {ms: 2000, n: 20}, {ms: 3000, n: 25}, {ms: 4000, n: 25}},
			wantMin: 25, wantMax: 25,
		},
		"an idle credential does not grow": {
			// One answer a second against a rate of 10: under half of it in use.
			ceiling: 100, events: []event{{ms: 0}, {ms: 1000}, {ms: 2000}, {ms: 3000}},
			wantMin: AdaptiveInitialQPS, wantMax: AdaptiveInitialQPS, wantSlowStart: true,
		},
		"a 429 ends slow start: β × what Adobe accepted over the last second": {
			// Slow start at 20/s or more, Adobe accepting ~16 in the last second.
			ceiling: 100, events: []event{{ms: 0}, {ms: 1000, n: 10}, {ms: 2000, n: 16}, {ms: 2000, throttled: true, sentMs: 1990}},
			wantMin: AdaptiveDecrease * 14, wantMax: AdaptiveDecrease * 16, wantDecreases: 1,
		},
		"a 429 at a rate under what was accepted: β × the rate": {
			ceiling: 100, start: 8, events: []event{{ms: 0}, {ms: 1000, n: 9}, {ms: 1000, throttled: true, sentMs: 990}},
			wantMin: AdaptiveDecrease * 8, wantMax: AdaptiveDecrease * 8.5, wantDecreases: 1,
		},
		"one decrease per congestion event": {
			// The second 429 answers a call sent before the first decrease.
			ceiling: 8, events: []event{{ms: 0}, {ms: 1000, n: 8},
				{ms: 1000, throttled: true, sentMs: 990}, {ms: 1010, throttled: true, sentMs: 995}},
			wantMin: AdaptiveDecrease * 8, wantMax: AdaptiveDecrease * 8, wantDecreases: 1,
		},
		"a 429 to a call sent after the decrease decreases again": {
			ceiling: 8, events: []event{{ms: 0}, {ms: 1000, n: 8},
				{ms: 1000, throttled: true, sentMs: 990}, {ms: 1100, throttled: true, sentMs: 1050}},
			wantMin: AdaptiveDecrease * AdaptiveDecrease * 8, wantMax: AdaptiveDecrease * AdaptiveDecrease * 8, wantDecreases: 2,
		},
		"never under the floor": {
			ceiling: 100, events: func() []event {
				evs := []event{{ms: 0}}
				for i := 1; i <= 40; i++ {
					evs = append(evs, event{ms: i * 100, throttled: true, sentMs: i*100 - 1})
				}
				return evs
			}(),
			wantMin: AdaptiveMinQPS, wantMax: AdaptiveMinQPS, wantDecreases: 40,
		},
		"additive increase: α per busy second": {
			// 6/s, busy for 4 s: + at most 4 × 0.5.
			ceiling: 100, start: 6, events: []event{{ms: 0}, {ms: 1000, n: 6}, {ms: 2000, n: 7}, {ms: 3000, n: 7}, {ms: 4000, n: 7}},
			wantMin: 6 + 3*AdaptiveIncrease, wantMax: 6 + 4*AdaptiveIncrease,
		},
		"additive increase: a share of the rate per busy second at high rates": {
			// 60/s, busy for 2 s: + at most 2 × 2% of the rate.
			ceiling: 100, start: 60, events: []event{{ms: 0}, {ms: 1000, n: 60}, {ms: 2000, n: 60}},
			wantMin: 60 * (1 + AdaptiveIncreaseShare), wantMax: 60 * (1 + 2*AdaptiveIncreaseShare) * 1.001,
		},
		"a 429 with little traffic: down to what was used, then slow start back to β × the old rate": {
			// At 40/s using 2/s, a 429; then a busy stretch: doubling up to 32.
			ceiling: 100, start: 40, events: []event{{ms: 0}, {ms: 1000, n: 2}, {ms: 1000, throttled: true, sentMs: 999},
				{ms: 2000, n: 2}, {ms: 3000, n: 4}, {ms: 4000, n: 8}, {ms: 5000, n: 16}, {ms: 6000, n: 32}, {ms: 7000, n: 32}},
			// (then additive increase from 32 for what is left of the run)
			wantMin: AdaptiveDecrease * 40, wantMax: AdaptiveDecrease*40 + 2, wantDecreases: 1,
		},
		"the ceiling holds in additive increase": {
			ceiling: 8, start: 7.9, events: []event{{ms: 0}, {ms: 1000, n: 8}, {ms: 2000, n: 8}},
			wantMin: 8, wantMax: 8,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := NewAIMD(tc.ceiling)
			if tc.start > 0 {
				a.rate, a.slowStart = tc.start, false
			}
			feed(a, tc.events)
			if a.Rate() < tc.wantMin-1e-9 || a.Rate() > tc.wantMax+1e-9 {
				t.Errorf("rate = %.3f, want within [%.3f, %.3f]", a.Rate(), tc.wantMin, tc.wantMax)
			}
			if a.SlowStart() != tc.wantSlowStart {
				t.Errorf("slow start = %v, want %v", a.SlowStart(), tc.wantSlowStart)
			}
			if a.Decreases() != tc.wantDecreases {
				t.Errorf("decreases = %d, want %d", a.Decreases(), tc.wantDecreases)
			}
		})
	}
}

// A simulated server limit, stepped in 10 ms: the controller, always busy,
// settles around the limit: over a minute it gets at least 85% of it
// accepted and at most 5% of its calls refused, at 10/s and at 50/s.
func TestAIMDAgainstALimit(t *testing.T) {
	for _, limit := range []float64{10, 50} {
		a := NewAIMD(100)
		var sent, refused int
		tokens, credit := limit, 0.0 // the server's bucket (burst: one second) and the client's
		const step = 10 * time.Millisecond
		now := t0
		for i := 0; i < 6000; i++ {
			now = now.Add(step)
			tokens = math.Min(limit, tokens+limit*step.Seconds())
			credit = math.Min(math.Max(a.Rate(), 1), credit+a.Rate()*step.Seconds())
			for credit >= 1 {
				credit--
				sent++
				if tokens >= 1 {
					tokens--
					a.Accepted(now)
					continue
				}
				refused++
				// The answer comes back 20 ms after the call left.
				a.Throttled(now.Add(20*time.Millisecond), now)
			}
		}
		accepted := float64(sent - refused)
		if share := accepted / (limit * 60); share < 0.85 {
			t.Errorf("limit %v/s: %.0f accepted in 60 s, %.0f%% of the limit, want ≥ 85%%", limit, accepted, 100*share)
		}
		if share := float64(refused) / float64(sent); share > 0.05 {
			t.Errorf("limit %v/s: %d of %d calls refused (%.1f%%), want ≤ 5%%", limit, refused, sent, 100*share)
		}
		t.Logf("limit %v/s: %.0f%% of the limit accepted, %.1f%% refused, final rate %.1f, %d decreases",
			limit, 100*accepted/(limit*60), 100*float64(refused)/float64(sent), a.Rate(), a.Decreases())
	}
}

// The limiter applies the controller's rate to its token bucket and reports
// it (the capillary_adobe_rate_limit_qps gauge).
func TestAdaptiveLimiterAppliesTheRate(t *testing.T) {
	now := t0
	var reported []float64
	l := NewAdaptiveLimiter(100, 40, func() time.Time { return now }, func(q float64) { reported = append(reported, q) })
	if l.Rate() != AdaptiveInitialQPS || l.lim.Burst() != int(AdaptiveInitialQPS) {
		t.Fatalf("start: rate %.1f burst %d, want %.0f and %.0f", l.Rate(), l.lim.Burst(), AdaptiveInitialQPS, AdaptiveInitialQPS)
	}
	for range 10 { // a busy second at the start rate
		now = now.Add(100 * time.Millisecond)
		l.Observe(now.Add(-time.Millisecond), false)
	}
	now = now.Add(10 * time.Millisecond)
	l.Observe(now.Add(-time.Millisecond), true)
	got := l.Rate()
	if got >= AdaptiveInitialQPS || got < AdaptiveDecrease*(AdaptiveInitialQPS-1) {
		t.Fatalf("after a 429: rate %.2f, want about %.0f × %.0f", got, AdaptiveDecrease, AdaptiveInitialQPS)
	}
	if float64(l.lim.Limit()) != got || l.lim.Burst() != int(got) {
		t.Errorf("after a 429: bucket at %.2f/s burst %d, want %.2f and %d", float64(l.lim.Limit()), l.lim.Burst(), got, int(got))
	}
	if len(reported) == 0 || reported[len(reported)-1] != got {
		t.Errorf("reported rates %v, want the last %.2f", reported, got)
	}
}
