package flowservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aepoperator/capillary-operator/internal/ims"
)

const flowID = "993f908f-3342-4d9c-9f3c-5aa9a189ca1a"

// sequence answers the n-th request with steps[n] (the last step repeats);
// a nil step answers like Adobe would.
func sequence(steps ...http.HandlerFunc) http.HandlerFunc {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(steps) {
			i = len(steps) - 1
		}
		if steps[i] == nil {
			adobeLike(w, r)
			return
		}
		steps[i](w, r)
	}
}

func answer(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		writeJSON(w, status, body)
	}
}

const invalidToken = `{"error_code":"401013","message":"Oauth token is not valid"}`

func TestRenewsRejectedTokenOnce(t *testing.T) {
	t.Run("renewed token succeeds", func(t *testing.T) {
		env := newEnv(t, sequence(answer(401, invalidToken), nil))
		if _, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
			t.Fatalf("GetFlow: %v", err)
		}
		reqs := env.rec.requests()
		if len(reqs) != 2 {
			t.Fatalf("requests = %d, want 2", len(reqs))
		}
		if got := reqs[1].req.Header.Get("Authorization"); got != "Bearer eyJ-test-token-2" {
			t.Errorf("retry sent %q, want the renewed token", got)
		}
		if diff := cmp.Diff([]string{"eyJ-test-token-1"}, env.tokens.invalidated); diff != "" {
			t.Errorf("invalidated (-want +got):\n%s", diff)
		}
		if len(env.sleeps.got()) != 0 {
			t.Errorf("slept %v before renewing the token", env.sleeps.got())
		}
	})
	t.Run("second 401 is returned", func(t *testing.T) {
		env := newEnv(t, answer(401, invalidToken))
		_, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID)
		var e *Error
		if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized || e.Code != "401013" {
			t.Fatalf("err = %v, want the gateway's 401013", err)
		}
		if n := env.rec.count(); n != 2 {
			t.Errorf("requests = %d, want 2 (one renewal)", n)
		}
	})
	t.Run("renewal does not use up a retry", func(t *testing.T) {
		env := newEnv(t, sequence(answer(503, `{}`), answer(401, invalidToken), nil),
			WithRetryPolicy(RetryPolicy{MaxAttempts: 2}))
		if _, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
			t.Fatalf("GetFlow: %v", err)
		}
		if n := env.rec.count(); n != 3 {
			t.Errorf("requests = %d, want 3", n)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 9, 23, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		name       string
		retryAfter string
		wantSleeps []time.Duration
		wantReqs   int
		wantErr    time.Duration // RetryAfter on the returned error; 0 = success
	}{
		{"seconds", "2", []time.Duration{2 * time.Second}, 2, 0},
		{"HTTP date", now.Add(5 * time.Second).Format(http.TimeFormat), []time.Duration{5 * time.Second}, 2, 0},
		{"at the cap", "30", []time.Duration{30 * time.Second}, 2, 0},
		{"beyond the cap is handed back", "120", nil, 1, 120 * time.Second},
		{"date beyond the cap is handed back", now.Add(10 * time.Minute).Format(http.TimeFormat), nil, 1, 10 * time.Minute},
		{"unreadable falls back to backoff", "soon", []time.Duration{time.Second}, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, sequence(answer(429, `{"error_code":"429050","message":"Too many requests"}`, "Retry-After", tc.retryAfter), nil),
				WithClock(clock))
			_, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID)
			if tc.wantErr == 0 && err != nil {
				t.Fatalf("GetFlow: %v", err)
			}
			if tc.wantErr != 0 {
				var e *Error
				if !errors.As(err, &e) || e.RetryAfter != tc.wantErr || !IsRetryable(err) {
					t.Fatalf("err = %v, want a retryable error with RetryAfter %v", err, tc.wantErr)
				}
			}
			if diff := cmp.Diff(tc.wantSleeps, env.sleeps.got()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if n := env.rec.count(); n != tc.wantReqs {
				t.Errorf("requests = %d, want %d", n, tc.wantReqs)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Run("doubles until success", func(t *testing.T) {
		unavailable := answer(503, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1103-503","title":"Service Unavailable","status":503}`)
		env := newEnv(t, sequence(unavailable, unavailable, unavailable, nil))
		if _, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
			t.Fatalf("GetFlow: %v", err)
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
		if diff := cmp.Diff(want, env.sleeps.got()); diff != "" {
			t.Errorf("sleeps (-want +got):\n%s", diff)
		}
	})
	t.Run("bounded tries", func(t *testing.T) {
		env := newEnv(t, answer(502, `<html><body><h1>502 Bad Gateway</h1></body></html>`),
			WithRetryPolicy(RetryPolicy{MaxAttempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 150 * time.Millisecond}))
		_, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID)
		if !IsRetryable(err) {
			t.Fatalf("err = %v, want retryable", err)
		}
		if n := env.rec.count(); n != 3 {
			t.Errorf("requests = %d, want 3", n)
		}
		want := []time.Duration{100 * time.Millisecond, 150 * time.Millisecond}
		if diff := cmp.Diff(want, env.sleeps.got()); diff != "" {
			t.Errorf("sleeps (-want +got):\n%s", diff)
		}
	})
	t.Run("a Retry-After wait takes a backoff step", func(t *testing.T) {
		throttled := answer(429, `{}`, "Retry-After", "7")
		unavailable := answer(503, `{}`)
		env := newEnv(t, sequence(throttled, unavailable, nil))
		if _, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
			t.Fatalf("GetFlow: %v", err)
		}
		want := []time.Duration{7 * time.Second, 2 * time.Second}
		if diff := cmp.Diff(want, env.sleeps.got()); diff != "" {
			t.Errorf("sleeps (-want +got):\n%s", diff)
		}
	})
	t.Run("default jitter stays within the backoff", func(t *testing.T) {
		for _, d := range []time.Duration{0, 1, time.Second, 30 * time.Second} {
			for range 100 {
				if got := equalJitter(d); got < d/2 || got > d {
					t.Fatalf("equalJitter(%v) = %v", d, got)
				}
			}
		}
	})
}

func TestWhatIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		create   bool // a POST create rather than a GET
		wantReqs int
	}{
		{"400 validation error", 400, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1100-400","title":"Invalid request","status":400}`, false, 1},
		{"400 on create", 400, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1410-400","title":"Invalid request","status":400}`, true, 1},
		{"403 not entitled", 403, `{"error_code":"403003","message":"Api Key is invalid"}`, false, 1},
		{"404", 404, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1439-404","title":"Resource not found","status":404}`, false, 1},
		{"412 etag", 412, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1404-412","title":"Version not matching","status":412}`, false, 1},
		{"plain 500", 500, `{"title":"boom"}`, false, 1},
		{"1102 internal error", 500, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1102-500","title":"Internal Error","status":500}`, false, 4},
		{"1104 timeout", 504, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1104-504","status":504}`, false, 4},
		{"429", 429, `{}`, false, 4},
		{"429 on create", 429, `{}`, true, 4},
		{"503 on create", 503, `{}`, true, 4},
		// The gateway may have created the object before timing out.
		{"504 on create", 504, `{}`, true, 1},
		{"1102 on create", 500, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1102-500","status":500}`, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, answer(tc.status, tc.body))
			var err error
			if tc.create {
				_, err = env.client.Session(testScope()).CreateFlow(context.Background(), FlowInput{Name: "x", FlowSpec: SpecRef{ID: streamingFlowID}})
			} else {
				_, err = env.client.Session(testScope()).GetFlow(context.Background(), flowID)
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if n := env.rec.count(); n != tc.wantReqs {
				t.Errorf("requests = %d, want %d", n, tc.wantReqs)
			}
		})
	}
}

func TestNetworkFailures(t *testing.T) {
	dropConnection := func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	t.Run("idempotent call retried", func(t *testing.T) {
		env := newEnv(t, sequence(dropConnection, nil))
		if _, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
			t.Fatalf("GetFlow: %v", err)
		}
		if n := env.rec.count(); n != 2 {
			t.Errorf("requests = %d, want 2", n)
		}
	})
	t.Run("create not repeated after a lost answer", func(t *testing.T) {
		env := newEnv(t, sequence(dropConnection, nil))
		_, err := env.client.Session(testScope()).CreateSourceConnection(context.Background(), SourceConnectionInput{Name: "x"})
		if !IsRetryable(err) {
			t.Fatalf("err = %v, want a retryable network error", err)
		}
		if n := env.rec.count(); n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
	})
	t.Run("per-request timeout", func(t *testing.T) {
		env := newEnv(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			WithRequestTimeout(20*time.Millisecond), WithRetryPolicy(RetryPolicy{MaxAttempts: 2}))
		_, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID)
		if !errors.Is(err, context.DeadlineExceeded) || !IsRetryable(err) {
			t.Fatalf("err = %v, want a retryable deadline error", err)
		}
		if n := env.rec.count(); n != 2 {
			t.Errorf("requests = %d, want 2 (each try has its own timeout)", n)
		}
	})
	t.Run("caller cancellation stops at once", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		env := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
			cancel()
			<-r.Context().Done()
		})
		_, err := env.client.Session(testScope()).GetFlow(ctx, flowID)
		if !errors.Is(err, context.Canceled) || IsRetryable(err) {
			t.Fatalf("err = %v, want context.Canceled, not retryable", err)
		}
		if n := env.rec.count(); n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
	})
}

func TestRateLimit(t *testing.T) {
	t.Run("every try waits on its credential's bucket", func(t *testing.T) {
		env := newEnv(t, sequence(answer(503, `{}`), nil))
		other := testScope()
		other.ClientID = "other-client"
		sameOrgOtherCredential := other
		ctx := context.Background()
		for _, s := range []Scope{testScope(), testScope(), sameOrgOtherCredential} {
			if _, err := env.client.Session(s).GetFlow(ctx, flowID); err != nil {
				t.Fatal(err)
			}
		}
		// The first call was retried once: 2 + 1 waits for the first
		// credential; the org's other credential has a bucket of its own.
		want := map[string]int{testClientID: 3, "other-client": 1}
		if diff := cmp.Diff(want, env.limits.waits); diff != "" {
			t.Errorf("waits per credential (-want +got):\n%s", diff)
		}
		if n := env.rec.count(); n != 4 {
			t.Errorf("requests = %d, want 4", n)
		}
	})
	for _, adaptive := range []bool{false, true} {
		t.Run(fmt.Sprintf("token bucket from WithRateLimit (adaptive %v)", adaptive), func(t *testing.T) {
			rec := newRecorder(t, adobeLike)
			c, err := New(WithBaseURL(rec.URL), WithTokenSource(&fakeTokens{}), WithRateLimit(0.001, 1), WithAdaptive(adaptive))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
				t.Fatalf("first call within the burst: %v", err)
			}
			// The next token is ~1000s away; rate.Limiter refuses at once rather
			// than wait past the deadline, so no real time passes here.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := c.Session(testScope()).GetFlow(ctx, flowID); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("second call through an empty bucket: err = %v, want a deadline hit", err)
			}
			other := testScope()
			other.ClientID = "other-client"
			if _, err := c.Session(other).GetFlow(ctx, flowID); err != nil {
				t.Errorf("another credential of the org has its own bucket: %v", err)
			}
			if n := rec.count(); n != 2 {
				t.Errorf("requests = %d, want 2", n)
			}
		})
	}
	t.Run("org-wide ceiling over the org's credentials", func(t *testing.T) {
		rec := newRecorder(t, adobeLike)
		c, err := New(WithBaseURL(rec.URL), WithTokenSource(&fakeTokens{}), WithRateLimit(1000, 1000), WithOrgRateLimit(0.001, 1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
			t.Fatalf("first call within the org's burst: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		other := testScope()
		other.ClientID = "other-client"
		if _, err := c.Session(other).GetFlow(ctx, flowID); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("another credential of the same org: err = %v, want a deadline hit on the org's ceiling", err)
		}
		otherOrg := other
		otherOrg.OrgID = "OTHER@AdobeOrg"
		if _, err := c.Session(otherOrg).GetFlow(ctx, flowID); err != nil {
			t.Errorf("another org has its own ceiling: %v", err)
		}
	})
	t.Run("the adaptive limiter hears every answer", func(t *testing.T) {
		obs := &observingLimiter{}
		env := newEnv(t, sequence(answer(429, `{}`), nil), WithLimiterFactory(func(string) Limiter { return obs }))
		if _, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]bool{true, false}, obs.throttled); diff != "" {
			t.Errorf("answers observed, throttled or not (-want +got):\n%s", diff)
		}
	})
}

// observingLimiter lets everything through and records what it observes.
type observingLimiter struct {
	mu        sync.Mutex
	throttled []bool
}

func (l *observingLimiter) Wait(context.Context) error { return nil }
func (l *observingLimiter) Observe(_ time.Time, throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.throttled = append(l.throttled, throttled)
}

func TestEmptyItemsIsNotFound(t *testing.T) {
	env := newEnv(t, answer(200, `{"items":[]}`))
	_, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID)
	if !IsNotFound(err) {
		t.Fatalf("err = %v, want not found", err)
	}
	if n := env.rec.count(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestListFollowsContinuation(t *testing.T) {
	env := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("continuationToken") {
		case "":
			writeJSON(w, 200, `{"items":[{"id":"a"}],"_links":{"next":{"href":"/flows?property=name%3D%3Dx&continuationToken=page2"}}}`)
		case "page2":
			writeJSON(w, 200, `{"items":[{"id":"b"}]}`)
		}
	})
	flows, err := env.client.Session(testScope()).ListFlows(context.Background(), "name==x")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range flows {
		ids = append(ids, f.ID)
	}
	if diff := cmp.Diff([]string{"a", "b"}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if got := env.rec.requests()[1].req.URL.Query()["property"]; !cmp.Equal(got, []string{"name==x"}) {
		t.Errorf("second page lost the filter: %q", got)
	}
}

func TestArgumentChecks(t *testing.T) {
	env := newEnv(t, adobeLike)
	ctx, s := context.Background(), testScope()
	noOrg := s
	noOrg.OrgID = ""
	for name, run := range map[string]func() error{
		"missing org": func() error { _, err := env.client.Session(noOrg).GetFlow(ctx, flowID); return err },
		"empty id":    func() error { _, err := env.client.Session(s).GetFlow(ctx, ""); return err },
		"patch without tag": func() error {
			_, err := env.client.Session(s).PatchFlow(ctx, flowID, "", []PatchOp{{Op: PatchReplace, Path: "/name", Value: "x"}})
			return err
		},
		"patch without ops": func() error { _, err := env.client.Session(s).PatchFlow(ctx, flowID, testETag, nil); return err },
		"unknown action":    func() error { _, err := env.client.Session(s).FlowAction(ctx, flowID, "ENABLE"); return err },
	} {
		if run() == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if n := env.rec.count(); n != 0 {
		t.Errorf("requests = %d, want none for rejected arguments", n)
	}
	if _, err := New(WithBaseURL("platform.adobe.io")); err == nil {
		t.Error("New accepted a base URL without a scheme")
	}
}

func TestScopeTokensOverrideClient(t *testing.T) {
	env := newEnv(t, adobeLike)
	s := testScope()
	own := &fakeTokens{n: 41}
	s.Tokens = own
	if _, err := env.client.Session(s).GetFlow(context.Background(), flowID); err != nil {
		t.Fatal(err)
	}
	if got := env.rec.requests()[0].req.Header.Get("Authorization"); got != "Bearer eyJ-test-token-42" {
		t.Errorf("Authorization = %q, want the scope's own token", got)
	}
	if env.tokens.calls != 0 {
		t.Errorf("client token source used %d times", env.tokens.calls)
	}
}

func TestWithIMSCache(t *testing.T) {
	var imsCalls atomic.Int32
	imsSrv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		n := imsCalls.Add(1)
		writeJSON(w, 200, fmt.Sprintf(`{"access_token":"ims-token-%d","token_type":"bearer","expires_in":86399}`, n))
	})
	platform := newRecorder(t, sequence(answer(401, invalidToken), nil))
	c, err := New(WithBaseURL(platform.URL), WithTokenSource(ims.NewCache().Source(imsSrv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
		t.Fatal(err)
	}
	reqs := platform.requests()
	if got := []string{reqs[0].req.Header.Get("Authorization"), reqs[1].req.Header.Get("Authorization")}; !cmp.Equal(got, []string{"Bearer ims-token-1", "Bearer ims-token-2"}) {
		t.Errorf("tokens sent = %q, want the rejected one replaced", got)
	}
}

func TestMetrics(t *testing.T) {
	env := newEnv(t, sequence(answer(503, `{}`), nil))
	ok := testutil.ToFloat64(requestsTotal.WithLabelValues(OpGetFlow, "200"))
	unavailable := testutil.ToFloat64(requestsTotal.WithLabelValues(OpGetFlow, "503"))
	if _, err := env.client.Session(testScope()).GetFlow(context.Background(), flowID); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(requestsTotal.WithLabelValues(OpGetFlow, "200")) - ok; got != 1 {
		t.Errorf("200 count grew by %v, want 1", got)
	}
	if got := testutil.ToFloat64(requestsTotal.WithLabelValues(OpGetFlow, "503")) - unavailable; got != 1 {
		t.Errorf("503 count grew by %v, want 1", got)
	}
	if n := testutil.CollectAndCount(requestDuration, "capillary_adobe_request_duration_seconds"); n == 0 {
		t.Error("no duration observed")
	}
}

func TestNoSecretOrTokenInLogsOrErrors(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	log := funcr.NewJSON(func(obj string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, obj)
	}, funcr.Options{Verbosity: 10})
	ctx := logr.NewContext(context.Background(), log)

	// A server that echoes the credentials it was sent in its error bodies.
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, status, fmt.Sprintf(`{"type":"https://ns.adobe.com/aep/errors/FLOW-1100-400","title":"bad %s","status":%d,
				"report":{"detailed-message":"header was %s, secret %s","request-id":"req-1"}}`,
				r.Header.Get("Authorization"), status, r.Header.Get("Authorization"), testSecret))
		}
	}
	env := newEnv(t, sequence(echo(401), echo(503), nil, echo(400), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		fmt.Fprintf(w, "<html><body>upstream said %s and %s</body></html>", r.Header.Get("Authorization"), testSecret)
	}), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
	s := testScope()
	log.Info("scope", "scope", s)
	var errs []error
	if _, err := env.client.Session(s).GetFlow(ctx, flowID); err != nil { // 401, renewed, 503 (no retry budget)
		errs = append(errs, err)
	}
	if _, err := env.client.Session(s).GetFlow(ctx, flowID); err != nil { // ok
		errs = append(errs, err)
	}
	if _, err := env.client.Session(s).CreateFlow(ctx, FlowInput{Name: "x"}); err != nil { // 400
		errs = append(errs, err)
	}
	if _, err := env.client.Session(s).GetFlow(ctx, flowID); err != nil { // 502 HTML
		errs = append(errs, err)
	}
	if len(errs) != 3 {
		t.Fatalf("got %d errors, want 3: %v", len(errs), errs)
	}

	secrets := []string{testSecret, "eyJ-test-token"}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) < 5 {
		t.Fatalf("captured %d log lines, want one per request at least", len(lines))
	}
	for _, l := range lines {
		for _, secret := range secrets {
			if strings.Contains(l, secret) {
				t.Errorf("log line leaks %q: %s", secret, l)
			}
		}
	}
	for _, err := range errs {
		for _, secret := range secrets {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks %q: %v", secret, err)
			}
		}
	}
	if printed := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); strings.Contains(printed, testSecret) {
		t.Errorf("formatting a Scope leaks the secret: %s", printed)
	}
	// The failed create is logged with its operation, status and request id.
	found := false
	for _, l := range lines {
		var kv map[string]any
		if err := json.Unmarshal([]byte(l), &kv); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		if kv["operation"] == OpCreateFlow && kv["requestId"] == "req-1" && kv["status"] == float64(400) {
			found = true
		}
	}
	if !found {
		t.Errorf("no log entry carries operation %s, status 400 and request id req-1", OpCreateFlow)
	}
}

// steppedClock is a fake clock that only moves when the client sleeps.
type steppedClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *steppedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *steppedClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}

func TestRetriesStayInsideTheDeadline(t *testing.T) {
	unavailable := answer(503, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1103-503","title":"Service Unavailable","status":503}`)
	throttled := func(retryAfter string) http.HandlerFunc {
		return answer(429, `{"error_code":"429050","message":"Too many requests"}`, "Retry-After", retryAfter)
	}
	dropConnection := func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	}
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		// budget is the deadline's distance from the fake clock's start; 0
		// means no deadline.
		budget     time.Duration
		wantSleeps []time.Duration
		wantReqs   int
		// wantStatus is the Adobe answer the error must carry (0: none, or
		// success when !wantDeadline).
		wantStatus   int
		wantDeadline bool
	}{
		{name: "backoff fits", h: sequence(unavailable, nil), budget: time.Hour,
			wantSleeps: []time.Duration{time.Second}, wantReqs: 2},
		{name: "no deadline", h: sequence(unavailable, unavailable, nil),
			wantSleeps: []time.Duration{time.Second, 2 * time.Second}, wantReqs: 3},
		{name: "backoff past the deadline", h: unavailable, budget: 500 * time.Millisecond,
			wantReqs: 1, wantStatus: 503, wantDeadline: true},
		{name: "backoff ending at the deadline", h: unavailable, budget: time.Second,
			wantReqs: 1, wantStatus: 503, wantDeadline: true},
		{name: "second backoff past the deadline", h: unavailable, budget: 2500 * time.Millisecond,
			wantSleeps: []time.Duration{time.Second}, wantReqs: 2, wantStatus: 503, wantDeadline: true},
		{name: "Retry-After past the deadline", h: throttled("10"), budget: 5 * time.Second,
			wantReqs: 1, wantStatus: 429, wantDeadline: true},
		{name: "Retry-After fits, the next backoff does not", h: sequence(throttled("2"), unavailable), budget: 3 * time.Second,
			wantSleeps: []time.Duration{2 * time.Second}, wantReqs: 2, wantStatus: 503, wantDeadline: true},
		{name: "lost answer, backoff past the deadline", h: dropConnection, budget: 500 * time.Millisecond,
			wantReqs: 1, wantDeadline: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The fake clock runs an hour ahead of the real one, so the
			// context's real deadline is never reached while the test runs.
			clk := &steppedClock{t: time.Now().Add(time.Hour)}
			env := newEnv(t, tc.h, WithClock(clk.now), WithSleep(clk.sleep))
			ctx := context.Background()
			if tc.budget > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, clk.now().Add(tc.budget))
				defer cancel()
			}
			_, err := env.client.Session(testScope()).GetFlow(ctx, flowID)
			if !tc.wantDeadline && tc.wantStatus == 0 && err != nil {
				t.Fatalf("GetFlow: %v", err)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tc.wantDeadline {
				t.Errorf("errors.Is(%v, DeadlineExceeded) = %v, want %v", err, got, tc.wantDeadline)
			}
			var e *Error
			if got := errors.As(err, &e); got != (tc.wantStatus != 0) || (got && e.StatusCode != tc.wantStatus) {
				t.Errorf("err = %v, want Adobe's %d answer in it", err, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantSleeps, clk.sleeps); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if n := env.rec.count(); n != tc.wantReqs {
				t.Errorf("requests = %d, want %d", n, tc.wantReqs)
			}
		})
	}
}

func TestRateLimitRefusalIsADeadlineHit(t *testing.T) {
	refused := errors.New("rate: Wait(n=1) would exceed context deadline")
	withDeadline := func() context.Context {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name         string
		ctx          context.Context
		limiterErr   error
		wantDeadline bool
		wantCanceled bool
	}{
		{"refused with a deadline", withDeadline(), refused, true, false},
		{"refused without a deadline", context.Background(), refused, false, false},
		{"cancelled while waiting", withDeadline(), context.Canceled, false, true},
		{"deadline passed while waiting", withDeadline(), context.DeadlineExceeded, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, adobeLike)
			env.limits.err = tc.limiterErr
			_, err := env.client.Session(testScope()).GetFlow(tc.ctx, flowID)
			if err == nil {
				t.Fatal("want the limiter's error")
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tc.wantDeadline {
				t.Errorf("errors.Is(%v, DeadlineExceeded) = %v, want %v", err, got, tc.wantDeadline)
			}
			if got := errors.Is(err, context.Canceled); got != tc.wantCanceled {
				t.Errorf("errors.Is(%v, Canceled) = %v, want %v", err, got, tc.wantCanceled)
			}
			if n := env.rec.count(); n != 0 {
				t.Errorf("requests = %d, want 0", n)
			}
		})
	}
}
