package ims

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	testClientID = "321c8a8fee0d4a06838d46f9d3109e8a"
	testSecret   = "p8e-SUPER-SECRET-value"
)

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 9, 23, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// imsServer answers token requests with numbered tokens and records what it
// received; respond may override the answer.
type imsServer struct {
	*httptest.Server
	calls   atomic.Int32
	mu      sync.Mutex
	forms   []map[string][]string
	queries []string
	methods []string
	ctypes  []string
	respond func(w http.ResponseWriter, r *http.Request, n int32) bool
	expires string
}

func newIMS(t *testing.T) *imsServer {
	s := &imsServer{expires: "86399"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.calls.Add(1)
		if r.URL.Path != TokenPath {
			http.NotFound(w, r)
			return
		}
		_ = r.ParseForm()
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.queries = append(s.queries, r.URL.RawQuery)
		s.methods = append(s.methods, r.Method)
		s.ctypes = append(s.ctypes, r.Header.Get("Content-Type"))
		respond := s.respond
		s.mu.Unlock()
		if respond != nil && respond(w, r, n) {
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		fmt.Fprintf(w, `{"access_token":"token-%d","token_type":"bearer","expires_in":%s}`, n, s.expires)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *imsServer) setRespond(f func(w http.ResponseWriter, r *http.Request, n int32) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

func (s *imsServer) req() Request {
	return Request{URL: s.URL, ClientID: testClientID, ClientSecret: testSecret}
}

func TestTokenRequestIsAFormPost(t *testing.T) {
	s := newIMS(t)
	c := NewCache()
	tok, err := c.Token(context.Background(), s.req())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if tok.AccessToken != "token-1" {
		t.Errorf("access token = %q, want token-1", tok.AccessToken)
	}
	if got := s.methods[0]; got != http.MethodPost {
		t.Errorf("method = %s, want POST", got)
	}
	if got := s.queries[0]; got != "" {
		t.Errorf("query = %q, want none: credentials belong in the body", got)
	}
	if got := s.ctypes[0]; got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", got)
	}
	want := map[string][]string{
		"grant_type":    {"client_credentials"},
		"client_id":     {testClientID},
		"client_secret": {testSecret},
		"scope":         {DefaultScopes},
	}
	if diff := cmp.Diff(want, s.forms[0]); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
}

func TestCustomScopesAreCommaSeparated(t *testing.T) {
	s := newIMS(t)
	r := s.req()
	r.Scopes = []string{"openid", "AdobeID"}
	if _, err := NewCache().Token(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got := s.forms[0]["scope"]; !cmp.Equal(got, []string{"openid,AdobeID"}) {
		t.Errorf("scope = %q, want openid,AdobeID", got)
	}
}

func TestConcurrentCallersShareOneRequest(t *testing.T) {
	s := newIMS(t)
	release := make(chan struct{})
	s.setRespond(func(w http.ResponseWriter, r *http.Request, n int32) bool {
		<-release
		return false
	})
	c := NewCache()
	const callers = 50
	var wg sync.WaitGroup
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			var tok Token
			tok, errs[i] = c.Token(context.Background(), s.req())
			tokens[i] = tok.AccessToken
		})
	}
	close(release)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if tokens[i] != "token-1" {
			t.Errorf("caller %d got %q, want the shared token-1", i, tokens[i])
		}
	}
	if n := s.calls.Load(); n != 1 {
		t.Errorf("IMS requests = %d, want 1", n)
	}
}

func TestCacheKey(t *testing.T) {
	s := newIMS(t)
	c := NewCache()
	ctx := context.Background()
	base := s.req()
	first, err := c.Token(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Request)
		shared bool
	}{
		{"same credential", func(*Request) {}, true},
		{"trailing slash on the IMS URL", func(r *Request) { r.URL += "/" }, true},
		{"explicit default scopes", func(r *Request) { r.Scopes = []string{DefaultScopes} }, true},
		{"rotated secret", func(r *Request) { r.ClientSecret = "other-secret" }, false},
		{"other client", func(r *Request) { r.ClientID = "other-client" }, false},
		{"other scopes", func(r *Request) { r.Scopes = []string{"openid"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.mutate(&r)
			got, err := c.Token(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if shared := got.AccessToken == first.AccessToken; shared != tc.shared {
				t.Errorf("shared = %v, want %v", shared, tc.shared)
			}
		})
	}
}

func TestRefreshAhead(t *testing.T) {
	for _, tc := range []struct {
		name       string
		expiresIn  string
		stillFresh time.Duration // a token is served from cache at this age
		refreshed  time.Duration // and replaced at this age
	}{
		// 90% of 24h (21.6h) comes before expiry-5m.
		{"day token refreshes at 90%", "86399", 21*time.Hour + 35*time.Minute, 21*time.Hour + 36*time.Minute},
		// expiry-5m (25m) comes before 90% (27m).
		{"half-hour token refreshes 5m early", "1800", 24*time.Minute + 59*time.Second, 25 * time.Minute},
		// shorter than the 5-minute lead: 90% of 2m.
		{"short token refreshes at 90%", "120", 107 * time.Second, 108 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIMS(t)
			s.expires = tc.expiresIn
			clock := newClock()
			c := NewCache(WithClock(clock.Now))
			ctx := context.Background()
			if _, err := c.Token(ctx, s.req()); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tc.stillFresh)
			if tok, err := c.Token(ctx, s.req()); err != nil || tok.AccessToken != "token-1" {
				t.Fatalf("at %v: token %q, err %v; want cached token-1", tc.stillFresh, tok.AccessToken, err)
			}
			clock.Advance(tc.refreshed - tc.stillFresh)
			tok, err := c.Token(ctx, s.req())
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "token-2" {
				t.Errorf("at %v: token %q, want a fresh token-2", tc.refreshed, tok.AccessToken)
			}
			if n := s.calls.Load(); n != 2 {
				t.Errorf("IMS requests = %d, want 2", n)
			}
		})
	}
}

func TestExpiresInUnits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn string
		want      time.Duration
	}{
		{"v3 seconds", "86399", 86399 * time.Second},
		{"legacy milliseconds", "86399994", 86399994 * time.Millisecond},
		{"seconds as a string", `"3600"`, time.Hour},
		{"milliseconds as a string", `"86399994"`, 86399994 * time.Millisecond},
		{"largest value read as seconds", "1000000", 1000000 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIMS(t)
			s.expires = tc.expiresIn
			clock := newClock()
			start := clock.Now()
			tok, err := NewCache(WithClock(clock.Now)).Token(context.Background(), s.req())
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Expiry.Sub(start); got != tc.want {
				t.Errorf("lifetime = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInvalidate(t *testing.T) {
	s := newIMS(t)
	c := NewCache()
	ctx := context.Background()
	first, err := c.Token(ctx, s.req())
	if err != nil {
		t.Fatal(err)
	}
	c.Invalidate("not-a-cached-token")
	if got, _ := c.Token(ctx, s.req()); got.AccessToken != first.AccessToken {
		t.Fatalf("unknown token invalidated the cache: got %q", got.AccessToken)
	}
	c.Invalidate(first.AccessToken)
	second, err := c.Token(ctx, s.req())
	if err != nil {
		t.Fatal(err)
	}
	if second.AccessToken == first.AccessToken {
		t.Errorf("invalidated token %q served again", first.AccessToken)
	}
	// A late Invalidate of the old token must not drop its replacement.
	c.Invalidate(first.AccessToken)
	if third, _ := c.Token(ctx, s.req()); third.AccessToken != second.AccessToken {
		t.Errorf("replacement dropped: got %q, want %q", third.AccessToken, second.AccessToken)
	}
	if n := s.calls.Load(); n != 2 {
		t.Errorf("IMS requests = %d, want 2", n)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name          string
		status        int
		header        map[string]string
		body          string
		wantCode      string
		wantTerminal  bool
		wantTransient bool
		wantRetry     time.Duration
	}{
		{
			name: "bad secret", status: 401,
			body:     `{"error":"invalid_client","error_description":"invalid client_secret parameter"}`,
			wantCode: "invalid_client", wantTerminal: true,
		},
		{
			name: "scope not granted", status: 400,
			body:     `{"error":"invalid_scope","error_description":"invalid_scope"}`,
			wantCode: "invalid_scope", wantTerminal: true,
		},
		{
			name: "forbidden without a code", status: 403, body: `{}`,
			wantTerminal: true,
		},
		{
			name: "server error page", status: 502, header: map[string]string{"Content-Type": "text/html"},
			body:          "<html><body>Bad Gateway</body></html>",
			wantTransient: true,
		},
		{
			name: "server error page echoing the secret", status: 502, header: map[string]string{"Content-Type": "text/html"},
			body:          "<html><body>Bad Gateway for client_secret=" + testSecret + "</body></html>",
			wantTransient: true,
		},
		{
			name: "throttled", status: 429, header: map[string]string{"Retry-After": "7"},
			body:          `{"error":"too_many_requests"}`,
			wantCode:      "too_many_requests",
			wantTransient: true, wantRetry: 7 * time.Second,
		},
		{
			name: "unavailable", status: 503, body: `{"error":"server_error","error_description":"try later"}`,
			wantCode: "server_error", wantTransient: true,
		},
		{
			name: "no access token", status: 200, body: `{"token_type":"bearer","expires_in":86399}`,
			wantCode: CodeInvalidResponse, wantTransient: true,
		},
		{
			name: "no expiry", status: 200, body: `{"access_token":"abc","token_type":"bearer"}`,
			wantCode: CodeInvalidResponse, wantTransient: true,
		},
		{
			name: "secret echoed back", status: 401,
			body:     `{"error":"invalid_client","error_description":"client_secret ` + testSecret + ` is wrong"}`,
			wantCode: "invalid_client", wantTerminal: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIMS(t)
			s.setRespond(func(w http.ResponseWriter, r *http.Request, n int32) bool {
				w.Header().Set("Content-Type", "application/json")
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("X-Debug-Id", "debug-123")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
				return true
			})
			_, err := NewCache().Token(context.Background(), s.req())
			if err == nil {
				t.Fatal("Token succeeded, want an error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *ims.Error: %v", err, err)
			}
			if e.Code != tc.wantCode {
				t.Errorf("Code = %q, want %q", e.Code, tc.wantCode)
			}
			if tc.status != 200 && e.StatusCode != tc.status {
				t.Errorf("StatusCode = %d, want %d", e.StatusCode, tc.status)
			}
			if tc.status != 200 && e.DebugID != "debug-123" {
				t.Errorf("DebugID = %q", e.DebugID)
			}
			if e.RetryAfter != tc.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tc.wantRetry)
			}
			if got := IsTerminal(err); got != tc.wantTerminal {
				t.Errorf("IsTerminal = %v, want %v", got, tc.wantTerminal)
			}
			if got := IsTransient(err); got != tc.wantTransient {
				t.Errorf("IsTransient = %v, want %v", got, tc.wantTransient)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestNetworkFailuresAreTransient(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		s := newIMS(t)
		url := s.URL
		s.Close()
		_, err := NewCache().Token(context.Background(), Request{URL: url, ClientID: testClientID, ClientSecret: testSecret})
		if !IsTransient(err) || IsTerminal(err) {
			t.Errorf("err = %v: transient %v, terminal %v; want transient", err, IsTransient(err), IsTerminal(err))
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Errorf("error leaks the secret: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		s := newIMS(t)
		s.setRespond(func(w http.ResponseWriter, r *http.Request, n int32) bool {
			<-r.Context().Done()
			return true
		})
		_, err := NewCache(WithTimeout(50*time.Millisecond)).Token(context.Background(), s.req())
		if !IsTransient(err) {
			t.Errorf("err = %v, want transient", err)
		}
	})
}

func TestTransientRefreshFailureKeepsValidToken(t *testing.T) {
	s := newIMS(t)
	s.expires = "3600"
	clock := newClock()
	c := NewCache(WithClock(clock.Now))
	ctx := context.Background()
	if _, err := c.Token(ctx, s.req()); err != nil {
		t.Fatal(err)
	}
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	s.setRespond(func(w http.ResponseWriter, r *http.Request, n int32) bool {
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, `{"error":"server_error"}`)
		return true
	})
	clock.Advance(55 * time.Minute) // due for refresh, not expired
	tok, err := c.Token(ctx, s.req())
	if err != nil || tok.AccessToken != "token-1" {
		t.Errorf("during an IMS outage: token %q, err %v; want the still-valid token-1", tok.AccessToken, err)
	}
	status.Store(http.StatusUnauthorized) // the credential was revoked
	if _, err := c.Token(ctx, s.req()); !IsTerminal(err) {
		t.Errorf("revoked credential: err = %v, want terminal", err)
	}
	status.Store(http.StatusServiceUnavailable)
	clock.Advance(5 * time.Minute) // expired
	if _, err := c.Token(ctx, s.req()); !IsTransient(err) {
		t.Errorf("after expiry: err = %v, want the transient IMS error", err)
	}
}

func TestCancelledCallerDoesNotCancelSharedFetch(t *testing.T) {
	s := newIMS(t)
	started := make(chan struct{})
	release := make(chan struct{})
	s.setRespond(func(w http.ResponseWriter, r *http.Request, n int32) bool {
		close(started)
		<-release
		return false
	})
	c := NewCache()
	ctx, cancel := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		_, err := c.Token(ctx, s.req())
		errA <- err
	}()
	<-started
	cancel()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: err = %v, want context.Canceled", err)
	}
	close(release)
	tok, err := c.Token(context.Background(), s.req())
	if err != nil || tok.AccessToken != "token-1" {
		t.Errorf("second caller: token %q, err %v; want token-1 from the first fetch", tok.AccessToken, err)
	}
	if n := s.calls.Load(); n != 1 {
		t.Errorf("IMS requests = %d, want 1", n)
	}
}

func TestMetrics(t *testing.T) {
	s := newIMS(t)
	c := NewCache()
	success := testutil.ToFloat64(tokenRequests.WithLabelValues("success"))
	terminal := testutil.ToFloat64(tokenRequests.WithLabelValues("terminal"))
	if _, err := c.Token(context.Background(), s.req()); err != nil {
		t.Fatal(err)
	}
	s.setRespond(func(w http.ResponseWriter, r *http.Request, n int32) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"invalid_client"}`)
		return true
	})
	r := s.req()
	r.ClientSecret = "wrong"
	if _, err := c.Token(context.Background(), r); err == nil {
		t.Fatal("want an error")
	}
	if got := testutil.ToFloat64(tokenRequests.WithLabelValues("success")) - success; got != 1 {
		t.Errorf("success count grew by %v, want 1", got)
	}
	if got := testutil.ToFloat64(tokenRequests.WithLabelValues("terminal")) - terminal; got != 1 {
		t.Errorf("terminal count grew by %v, want 1", got)
	}
}

func TestNoSecretOrTokenInLogs(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
	ctx := logr.NewContext(context.Background(), log)

	s := newIMS(t)
	clock := newClock()
	c := NewCache(WithClock(clock.Now))
	tok, err := c.Token(ctx, s.req())
	if err != nil {
		t.Fatal(err)
	}
	// Log the values themselves the way careless code might.
	log.Info("values", "request", s.req(), "token", tok)
	s.setRespond(func(w http.ResponseWriter, r *http.Request, n int32) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		io.WriteString(w, `{"error":"server_error","error_description":"`+testSecret+`"}`)
		return true
	})
	clock.Advance(23 * time.Hour) // refresh fails, cached token served
	if _, err := c.Token(ctx, s.req()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour) // expired: the error is returned
	if _, err := c.Token(ctx, s.req()); err == nil {
		t.Fatal("want an error after expiry")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(lines) < 3 {
		t.Fatalf("captured %d log lines, want the token, failure and value lines", len(lines))
	}
	for _, l := range lines {
		for _, secret := range []string{testSecret, tok.AccessToken} {
			if strings.Contains(l, secret) {
				t.Errorf("log line leaks %q: %s", secret, l)
			}
		}
	}
	for _, printed := range []string{
		fmt.Sprintf("%v %+v %#v %s", s.req(), s.req(), s.req(), s.req()),
		fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok),
	} {
		if strings.Contains(printed, testSecret) || strings.Contains(printed, tok.AccessToken) {
			t.Errorf("formatting leaks a credential: %s", printed)
		}
	}
}

func TestSourceAdaptsCache(t *testing.T) {
	s := newIMS(t)
	c := NewCache()
	src := c.Source(s.URL, "openid")
	tok, err := src.Token(context.Background(), testClientID, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.forms[0]["scope"]; !cmp.Equal(got, []string{"openid"}) {
		t.Errorf("scope = %q", got)
	}
	src.Invalidate(tok)
	if tok2, _ := src.Token(context.Background(), testClientID, testSecret); tok2 == tok {
		t.Errorf("Invalidate through the Source did not drop %q", tok)
	}
}
