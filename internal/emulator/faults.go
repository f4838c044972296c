package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// LostMode says how a lost response reaches the caller. In both modes the
// request has been carried out (the object is committed) before the response
// is lost.
type LostMode string

const (
	// LostMode500 answers 500 with Adobe's FLOW-1102-500 body.
	LostMode500 LostMode = "500"
	// LostModeDrop closes the connection without writing any response.
	LostModeDrop LostMode = "drop"
)

// Faults configures deliberate misbehaviour. The zero value injects nothing.
// Decisions come from a PRNG seeded with Seed, so a given sequence of requests
// meets the same faults on every run.
type Faults struct {
	// Seed seeds the PRNG behind every fault decision and the jitter.
	Seed uint64
	// Latency is added before each targeted request is handled.
	Latency time.Duration
	// Jitter adds a uniformly drawn extra delay in [0, Jitter).
	Jitter time.Duration
	// Rate503 is the probability [0,1] of answering 503 with Retry-After,
	// before the request is handled (nothing is committed).
	Rate503 float64
	// RetryAfter is the Retry-After sent with 503 and 429, rounded up to
	// whole seconds; zero means one second.
	RetryAfter time.Duration
	// Rate429 is the probability of answering 429 (nothing is committed).
	Rate429 float64
	// RateLostResponse is the probability of carrying out the request and
	// then losing its response (see LostMode).
	RateLostResponse float64
	// LostMode selects how a response is lost; empty means LostMode500.
	LostMode LostMode
	// RateTokenExpiry is the probability that a targeted Platform request
	// finds its access token expired: the token is invalidated and the
	// request answered 401 401013, as when a token runs out mid-flight.
	RateTokenExpiry float64
	// Operations restricts all of the above to these operations (exact names
	// such as OpFlowsCreate, "flows.*" or "*"); empty means every operation.
	Operations []string
}

// Validate reports a configuration that cannot be honoured.
func (f Faults) Validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{{"rate503", f.Rate503}, {"rate429", f.Rate429}, {"rateLostResponse", f.RateLostResponse}, {"rateTokenExpiry", f.RateTokenExpiry}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s must be within [0,1], got %v", r.name, r.v))
		}
	}
	if sum := f.Rate503 + f.Rate429 + f.RateLostResponse + f.RateTokenExpiry; sum > 1 {
		errs = append(errs, fmt.Errorf("the sum of the rates must not exceed 1, got %v", sum))
	}
	if f.Latency < 0 || f.Jitter < 0 || f.RetryAfter < 0 {
		errs = append(errs, errors.New("latency, jitter and retryAfter must not be negative"))
	}
	switch f.LostMode {
	case "", LostMode500, LostModeDrop:
	default:
		errs = append(errs, fmt.Errorf("lostMode must be %q or %q, got %q", LostMode500, LostModeDrop, f.LostMode))
	}
	known := map[string]bool{"*": true}
	for _, op := range Operations() {
		known[op] = true
	}
	for _, p := range f.Operations {
		if known[p] {
			continue
		}
		matched := false
		for _, op := range Operations() {
			if matchOp(p, op) {
				matched = true
				break
			}
		}
		if !matched {
			errs = append(errs, fmt.Errorf("operation %q matches no operation", p))
		}
	}
	return errors.Join(errs...)
}

func (f Faults) retryAfterSeconds() int {
	if f.RetryAfter <= 0 {
		return 1
	}
	return int((f.RetryAfter + time.Second - 1) / time.Second)
}

func (f Faults) targets(op string) bool {
	if len(f.Operations) == 0 {
		return true
	}
	for _, p := range f.Operations {
		if matchOp(p, op) {
			return true
		}
	}
	return false
}

type faultKind int

const (
	faultNone faultKind = iota
	fault503
	fault429
	faultLost
	faultTokenExpiry
)

type faultDecision struct {
	kind       faultKind
	delay      time.Duration
	retryAfter int
	lostMode   LostMode
}

// faultInjector draws fault decisions from a seeded PRNG under a mutex.
type faultInjector struct {
	mu  sync.Mutex
	cfg Faults
	rng *rand.Rand
}

func newFaultInjector(f Faults) *faultInjector {
	fi := &faultInjector{}
	fi.set(f)
	return fi
}

func (fi *faultInjector) set(f Faults) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	fi.cfg = f
	fi.cfg.Operations = append([]string(nil), f.Operations...)
	// Two PCG words from one seed; the constant only decorrelates them.
	fi.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
}

func (fi *faultInjector) get() Faults {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := fi.cfg
	f.Operations = append([]string(nil), fi.cfg.Operations...)
	return f
}

// decide draws the fate of one request. Untargeted operations consume no
// random numbers, so adding traffic to other operations does not shift the
// sequence a targeted operation sees.
func (fi *faultInjector) decide(op string) faultDecision {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := fi.cfg
	if !f.targets(op) {
		return faultDecision{}
	}
	d := faultDecision{delay: f.Latency, retryAfter: f.retryAfterSeconds(), lostMode: f.LostMode}
	if d.lostMode == "" {
		d.lostMode = LostMode500
	}
	if f.Jitter > 0 {
		d.delay += time.Duration(fi.rng.Int64N(int64(f.Jitter)))
	}
	if f.Rate503 == 0 && f.Rate429 == 0 && f.RateLostResponse == 0 && f.RateTokenExpiry == 0 {
		return d
	}
	u := fi.rng.Float64()
	switch {
	case u < f.Rate503:
		d.kind = fault503
	case u < f.Rate503+f.Rate429:
		d.kind = fault429
	case u < f.Rate503+f.Rate429+f.RateLostResponse:
		d.kind = faultLost
	case u < f.Rate503+f.Rate429+f.RateLostResponse+f.RateTokenExpiry:
		d.kind = faultTokenExpiry
	}
	return d
}

// faultsJSON is the JSON form of Faults: durations as Go duration strings
// ("250ms", "1s").
type faultsJSON struct {
	Seed             uint64   `json:"seed"`
	Latency          string   `json:"latency,omitempty"`
	Jitter           string   `json:"jitter,omitempty"`
	Rate503          float64  `json:"rate503,omitempty"`
	RetryAfter       string   `json:"retryAfter,omitempty"`
	Rate429          float64  `json:"rate429,omitempty"`
	RateLostResponse float64  `json:"rateLostResponse,omitempty"`
	LostMode         LostMode `json:"lostMode,omitempty"`
	RateTokenExpiry  float64  `json:"rateTokenExpiry,omitempty"`
	Operations       []string `json:"operations,omitempty"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// MarshalJSON writes durations as strings such as "250ms".
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Seed: f.Seed, Latency: durString(f.Latency), Jitter: durString(f.Jitter),
		Rate503: f.Rate503, RetryAfter: durString(f.RetryAfter), Rate429: f.Rate429,
		RateLostResponse: f.RateLostResponse, LostMode: f.LostMode, RateTokenExpiry: f.RateTokenExpiry, Operations: f.Operations,
	})
}

// UnmarshalJSON reads the form MarshalJSON writes.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var w faultsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	parse := func(name, s string) (time.Duration, error) {
		if s == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return d, nil
	}
	var err error
	out := Faults{Seed: w.Seed, Rate503: w.Rate503, Rate429: w.Rate429, RateLostResponse: w.RateLostResponse,
		LostMode: w.LostMode, RateTokenExpiry: w.RateTokenExpiry, Operations: w.Operations}
	if out.Latency, err = parse("latency", w.Latency); err != nil {
		return err
	}
	if out.Jitter, err = parse("jitter", w.Jitter); err != nil {
		return err
	}
	if out.RetryAfter, err = parse("retryAfter", w.RetryAfter); err != nil {
		return err
	}
	*f = out
	return nil
}
