package flowservice

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aepoperator/capillary-operator/internal/ims"
)

const (
	testClientID = "321c8a8fee0d4a06838d46f9d3109e8a"
	testSecret   = "p8e-SUPER-SECRET-value"
	testOrg      = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
	testSandbox  = "prod"
)

var _ TokenSource = (*ims.Source)(nil)

func testScope() Scope {
	return Scope{ClientID: testClientID, ClientSecret: testSecret, OrgID: testOrg, SandboxName: testSandbox}
}

// fakeTokens hands out token-1, token-2, ...: a new one after each
// Invalidate of the current one.
type fakeTokens struct {
	mu          sync.Mutex
	n           int
	calls       int
	invalidated []string
}

func (f *fakeTokens) current() string { return fmt.Sprintf("eyJ-test-token-%d", f.n+1) }

func (f *fakeTokens) Token(ctx context.Context, clientID, clientSecret string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.current(), nil
}

func (f *fakeTokens) Invalidate(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidated = append(f.invalidated, tok)
	if tok == f.current() {
		f.n++
	}
}

// recorded is one request the test server received, body included.
type recorded struct {
	req  *http.Request
	body []byte
}

// recorder is an httptest server that records every request and answers with
// the handler under test.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		clone := r.Clone(context.Background())
		clone.Body = io.NopCloser(bytes.NewReader(body))
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{req: clone, body: body})
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// countingLimiter counts Wait calls per org.
type countingLimiter struct {
	mu    sync.Mutex
	waits map[string]int
	err   error
}

func (l *countingLimiter) factory(org string) Limiter {
	return limiterFunc(func(ctx context.Context) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.waits == nil {
			l.waits = map[string]int{}
		}
		l.waits[org]++
		return l.err
	})
}

type limiterFunc func(context.Context) error

func (f limiterFunc) Wait(ctx context.Context) error { return f(ctx) }

// sleepRecorder records the waits between tries instead of sleeping.
type sleepRecorder struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sleeps = append(s.sleeps, d)
	return ctx.Err()
}

func (s *sleepRecorder) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.sleeps...)
}

type testEnv struct {
	client *Client
	rec    *recorder
	tokens *fakeTokens
	sleeps *sleepRecorder
	limits *countingLimiter
}

// newEnv builds a client against a recording server. Waits are recorded, not
// slept, jitter is off and the rate limit only counts.
func newEnv(t *testing.T, h http.HandlerFunc, opts ...Option) *testEnv {
	t.Helper()
	env := &testEnv{rec: newRecorder(t, h), tokens: &fakeTokens{}, sleeps: &sleepRecorder{}, limits: &countingLimiter{}}
	all := append([]Option{
		WithBaseURL(env.rec.URL),
		WithHTTPClient(env.rec.Client()),
		WithTokenSource(env.tokens),
		WithSleep(env.sleeps.sleep),
		WithJitter(func(d time.Duration) time.Duration { return d }),
		WithLimiterFactory(env.limits.factory),
	}, opts...)
	c, err := New(all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.client = c
	return env
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}
