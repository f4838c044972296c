package emulator

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Beyond a credential's bucket the gateway answers 429 with Retry-After and
// does nothing; other credentials have buckets of their own; the bucket
// refills with time; IMS is not counted.
func TestRateLimitPerCredential(t *testing.T) {
	clock := newFakeClock()
	const other, otherSecret = "other-client", "other-secret"
	v := newEnv(t, Options{
		Credentials: map[string]string{testClientID: testSecret, other: otherSecret},
		Clock:       clock.Now,
		RateLimit:   RateLimit{PerSecond: 2, Burst: 3},
	})
	get := func(v *env) response { return v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil) }
	for range 3 {
		mustStatus(t, "within the burst", get(v), http.StatusOK)
	}
	res := v.do(http.MethodPost, fsPath("/sourceConnections"), sourceConnectionBody("limited"))
	mustStatus(t, "beyond the burst", res, http.StatusTooManyRequests)
	if got := res.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1 (a token in 0.5 s, rounded up)", got)
	}
	if res.gatewayCode() != "429050" || res.header.Get(HeaderEmulatorReason) != ReasonRateLimited {
		t.Errorf("429 body/reason = %s / %q, want the gateway's 429050", res.body, res.header.Get(HeaderEmulatorReason))
	}
	if n := len(v.emu.Objects().SourceConnections); n != 0 {
		t.Errorf("a rate-limited create committed %d source connections", n)
	}
	if got := v.emu.Calls().OpStatus(OpSourceConnectionsCreate, http.StatusTooManyRequests); got != 1 {
		t.Errorf("counted 429s = %d, want 1", got)
	}

	// Another credential has its own bucket; IMS is not limited.
	w := *v
	w.clientID, w.token = other, v.fetchToken(other, otherSecret)
	mustStatus(t, "another credential", get(&w), http.StatusOK)

	// Half a second refills one token.
	clock.Advance(500 * time.Millisecond)
	mustStatus(t, "after a refill", get(v), http.StatusOK)
	mustStatus(t, "the refill spent", get(v), http.StatusTooManyRequests)

	// Changed at run time, and lifted.
	if err := v.emu.SetRateLimit(RateLimit{}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		mustStatus(t, "no limit", get(v), http.StatusOK)
	}
	if err := v.emu.SetRateLimit(RateLimit{PerSecond: -1, Burst: -1}); err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("a negative burst was accepted: %v", err)
	}
}

// The default burst is one second of the rate.
func TestRateLimitDefaultBurst(t *testing.T) {
	clock := newFakeClock()
	v := newEnv(t, Options{Clock: clock.Now, RateLimit: RateLimit{PerSecond: 2.5}})
	ok := 0
	for range 5 {
		if v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil).status == http.StatusOK {
			ok++
		}
	}
	if ok != 3 {
		t.Errorf("%d of 5 requests at once admitted, want 3 (2.5/s rounded up)", ok)
	}
}
