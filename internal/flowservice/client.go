// Package flowservice is the operator's client for Adobe Experience Platform's
// Flow Service (connection specs, flow specs, source and target connections,
// dataflows) and Data Prep (mapping sets) APIs.
//
// Every call names the credential, org and sandbox it acts for (Scope), so one
// Client serves every CapillarySource. The Client adds the Platform headers,
// bounds each request in time, paces calls per credential with an adaptive
// token bucket (and optionally per org),
// retries what Adobe documents as transient, renews a rejected IMS token once,
// and turns every error body into one typed *Error.
package flowservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/aepoperator/capillary-operator/internal/excerpt"
	"github.com/aepoperator/capillary-operator/internal/httpretry"
)

// Defaults for a Client.
const (
	DefaultBaseURL = "https://platform.adobe.io"
	// FlowServicePath and DataPrepPath are the APIs' paths under the base URL.
	FlowServicePath = "/data/foundation/flowservice"
	DataPrepPath    = "/data/foundation/conversion"

	DefaultRequestTimeout = 30 * time.Second
	// DefaultQPS and DefaultBurst bound calls per credential (also the
	// manager's --adobe-qps and --adobe-burst defaults). With the adaptive
	// limiter (the default) they are the ceiling it never exceeds: the rate
	// itself is found from Adobe's 429s (adaptive.go, docs/performance.md).
	// A fixed limiter (WithAdaptive(false)) runs at them.
	DefaultQPS   = 100.0
	DefaultBurst = 40
	// FixedQPS is the per-org rate the operator shipped before the limiter
	// became adaptive (the baseline of docs/performance.md).
	FixedQPS = 20.0

	// maxResponseBytes bounds how much of a response is read.
	maxResponseBytes = 16 << 20
	// maxListPages bounds how many continuation pages a list follows.
	maxListPages = 100
)

// DefaultRetryPolicy is used when WithRetryPolicy is not given.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:   4,
	BaseDelay:     time.Second,
	MaxDelay:      30 * time.Second,
	MaxRetryAfter: 30 * time.Second,
}

// RetryPolicy bounds retries of transient failures.
type RetryPolicy struct {
	// MaxAttempts is the number of tries, the first included (1 = no retry).
	MaxAttempts int
	// BaseDelay is the first backoff; each retry doubles it, with jitter.
	BaseDelay time.Duration
	// MaxDelay caps one backoff.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits out itself.
	// Longer waits are returned as the error (with RetryAfter set) so the
	// caller can requeue instead of holding a worker.
	MaxRetryAfter time.Duration
}

// delays is one call's schedule of waits between tries: BaseDelay, doubled
// per retry, capped at MaxDelay. The client jitters each step itself (equal
// jitter), since wait.Backoff's own jitter only lengthens waits.
func (p RetryPolicy) delays() wait.Backoff {
	return wait.Backoff{Duration: min(p.BaseDelay, p.MaxDelay), Factor: 2, Cap: p.MaxDelay, Steps: p.MaxAttempts}
}

// TokenSource gives IMS access tokens for a client credential and drops one
// that Platform rejected. *ims.Source implements it.
type TokenSource interface {
	Token(ctx context.Context, clientID, clientSecret string) (string, error)
	Invalidate(accessToken string)
}

// Limiter paces requests; *rate.Limiter and *AdaptiveLimiter implement it.
// A Limiter that is also an Observer is told how each request it let
// through was answered.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Scope is who a call acts for: the Adobe credential, org and sandbox.
type Scope struct {
	// ClientID is the credential's client ID, also sent as x-api-key.
	ClientID     string
	ClientSecret string
	// OrgID is the IMS org, e.g. 0A7D42FC5DB9D3360A495FD3@AdobeOrg.
	OrgID string
	// SandboxName is the sandbox, e.g. prod.
	SandboxName string
	// Tokens, when set, replaces the Client's token source for this call.
	Tokens TokenSource
}

// String keeps the secret out of anything that prints a Scope.
func (s Scope) String() string {
	return fmt.Sprintf("flowservice.Scope{ClientID:%s ClientSecret:[redacted] OrgID:%s SandboxName:%s}", s.ClientID, s.OrgID, s.SandboxName)
}

// GoString keeps the secret out of %#v.
func (s Scope) GoString() string { return s.String() }

// MarshalLog keeps the secret out of structured logs (logr.Marshaler).
func (s Scope) MarshalLog() any {
	return struct{ ClientID, OrgID, SandboxName string }{s.ClientID, s.OrgID, s.SandboxName}
}

func (s Scope) validate() error {
	var missing []string
	if s.ClientID == "" {
		missing = append(missing, "client ID")
	}
	if s.OrgID == "" {
		missing = append(missing, "org ID")
	}
	if s.SandboxName == "" {
		missing = append(missing, "sandbox name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("incomplete scope: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Client calls Flow Service and Data Prep. It is safe for concurrent use.
type Client struct {
	baseURL    string
	httpClient *http.Client
	tokens     TokenSource
	timeout    time.Duration
	retry      RetryPolicy
	sleep      func(context.Context, time.Duration) error
	now        func() time.Time
	jitter     func(time.Duration) time.Duration

	qps        float64
	burst      int
	adaptive   bool
	orgQPS     float64
	orgBurst   int
	newLimiter func(clientID string) Limiter
	limMu      sync.Mutex
	limiters   map[string]Limiter
	orgLimits  map[string]*rate.Limiter
}

// Option configures a Client.
type Option func(*Client)

// WithBaseURL sets the Platform gateway, e.g. https://platform.adobe.io.
func WithBaseURL(u string) Option { return func(c *Client) { c.baseURL = u } }

// WithHTTPClient sets the HTTP client.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.httpClient = h } }

// WithTokenSource sets where access tokens come from (usually an *ims.Source).
func WithTokenSource(t TokenSource) Option { return func(c *Client) { c.tokens = t } }

// WithRequestTimeout bounds each HTTP request (each try, not the whole call).
func WithRequestTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetryPolicy sets how transient failures are retried. Zero fields keep
// their defaults.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithRateLimit sets the per-credential token bucket: qps requests a second
// on average, bursts up to burst. With the adaptive limiter (the default)
// they are its ceiling. qps <= 0 disables the limit.
func WithRateLimit(qps float64, burst int) Option {
	return func(c *Client) { c.qps, c.burst = qps, burst }
}

// WithAdaptive chooses between the adaptive limiter (true, the default: the
// rate is found from Adobe's 429s, up to WithRateLimit's qps) and a fixed
// token bucket at WithRateLimit's qps (false).
func WithAdaptive(on bool) Option { return func(c *Client) { c.adaptive = on } }

// WithOrgRateLimit adds an org-wide ceiling over every credential of an
// org: a fixed token bucket of qps and burst per org, waited on after the
// credential's own. qps <= 0 (the default) sets none.
func WithOrgRateLimit(qps float64, burst int) Option {
	return func(c *Client) { c.orgQPS, c.orgBurst = qps, burst }
}

// WithLimiterFactory replaces the per-credential limiter (tests count
// Waits); it is called once per client ID.
func WithLimiterFactory(f func(clientID string) Limiter) Option {
	return func(c *Client) { c.newLimiter = f }
}

// WithSleep replaces how the client waits between tries (tests record waits
// instead of sleeping).
func WithSleep(f func(context.Context, time.Duration) error) Option {
	return func(c *Client) { c.sleep = f }
}

// WithClock sets the time source used to read Retry-After dates and to tell
// whether a wait fits before the context's deadline.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithJitter replaces the backoff jitter (tests make it the identity).
func WithJitter(f func(time.Duration) time.Duration) Option {
	return func(c *Client) { c.jitter = f }
}

// New builds a Client.
func New(opts ...Option) (*Client, error) {
	registerMetrics()
	c := &Client{
		baseURL:    DefaultBaseURL,
		httpClient: http.DefaultClient,
		timeout:    DefaultRequestTimeout,
		retry:      DefaultRetryPolicy,
		sleep:      httpretry.Sleep,
		now:        time.Now,
		jitter:     equalJitter,
		qps:        DefaultQPS,
		burst:      DefaultBurst,
		adaptive:   true,
		limiters:   map[string]Limiter{},
		orgLimits:  map[string]*rate.Limiter{},
	}
	for _, o := range opts {
		o(c)
	}
	u, err := url.Parse(c.baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("platform URL %q is not an http(s) URL", c.baseURL)
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	if c.retry.MaxAttempts <= 0 {
		c.retry.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if c.retry.BaseDelay <= 0 {
		c.retry.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if c.retry.MaxDelay <= 0 {
		c.retry.MaxDelay = DefaultRetryPolicy.MaxDelay
	}
	if c.retry.MaxRetryAfter <= 0 {
		c.retry.MaxRetryAfter = DefaultRetryPolicy.MaxRetryAfter
	}
	if c.newLimiter == nil {
		qps, burst, adaptive, now := c.qps, c.burst, c.adaptive, c.now
		c.newLimiter = func(clientID string) Limiter {
			if qps <= 0 {
				return rate.NewLimiter(rate.Inf, 0)
			}
			if adaptive {
				gauge := rateLimitQPS.WithLabelValues(clientID)
				return NewAdaptiveLimiter(qps, burst, now, gauge.Set)
			}
			rateLimitQPS.WithLabelValues(clientID).Set(qps)
			return rate.NewLimiter(rate.Limit(qps), max(burst, 1))
		}
	}
	return c, nil
}

// equalJitter waits between half and all of d, so synchronized callers spread
// out while the backoff still grows.
func equalJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// limiter is the credential's limiter: Adobe I/O limits apply per
// Developer Console project, that is per credential (client ID).
func (c *Client) limiter(clientID string) Limiter {
	c.limMu.Lock()
	defer c.limMu.Unlock()
	l, ok := c.limiters[clientID]
	if !ok {
		l = c.newLimiter(clientID)
		c.limiters[clientID] = l
	}
	return l
}

// orgLimiter is the org-wide ceiling, nil when none is set.
func (c *Client) orgLimiter(orgID string) *rate.Limiter {
	if c.orgQPS <= 0 {
		return nil
	}
	c.limMu.Lock()
	defer c.limMu.Unlock()
	l, ok := c.orgLimits[orgID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(c.orgQPS), max(c.orgBurst, 1))
		c.orgLimits[orgID] = l
	}
	return l
}

// waitTurn waits for the credential's limiter, then the org's ceiling.
func (c *Client) waitTurn(ctx context.Context, s Scope) (Limiter, error) {
	l := c.limiter(s.ClientID)
	if err := l.Wait(ctx); err != nil {
		return l, rateWaitError(ctx, "per-credential", err)
	}
	if ol := c.orgLimiter(s.OrgID); ol != nil {
		if err := ol.Wait(ctx); err != nil {
			return l, rateWaitError(ctx, "per-org", err)
		}
	}
	return l, nil
}

// call describes one API operation.
type call struct {
	op     string
	api    string // FlowServicePath or DataPrepPath
	method string
	path   string // escaped, under api
	query  url.Values
	body   any
	// ifMatch is sent as If-Match when set.
	ifMatch string
	// idempotent calls may be retried after an answer was lost (network
	// failure, timeout) or came from a struggling gateway (502/504, 1102/1104):
	// the server may have done the work already, which is harmless only when
	// repeating it is. Creates retry only on answers that say nothing was
	// done (429, 503).
	idempotent bool
}

func (c *Client) url(cl call) string {
	u := c.baseURL + cl.api + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	return u
}

// do runs cl for s and decodes a 2xx body into out (when out is not nil).
func (c *Client) do(ctx context.Context, s Scope, cl call, out any) error {
	if err := s.validate(); err != nil {
		return err
	}
	tokens := s.Tokens
	if tokens == nil {
		tokens = c.tokens
	}
	if tokens == nil {
		return errors.New("no token source: configure the client with WithTokenSource or set Scope.Tokens")
	}
	var body []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	log := logr.FromContextOrDiscard(ctx).WithValues("operation", cl.op)

	backoff := c.retry.delays()
	renewedToken := false
	for attempt := 1; ; attempt++ {
		lim, err := c.waitTurn(ctx, s)
		if err != nil {
			return err
		}
		token, err := tokens.Token(ctx, s.ClientID, s.ClientSecret)
		if err != nil {
			return fmt.Errorf("get IMS token: %w", err)
		}

		sentAt := c.now()
		status, header, respBody, err := c.send(ctx, cl, s, token, body)
		if o, ok := lim.(Observer); ok && err == nil {
			o.Observe(sentAt, status == http.StatusTooManyRequests)
		}
		if err != nil {
			log.V(1).Info("Adobe request failed", "attempt", attempt, "error", err.Error())
			if ctx.Err() == nil && cl.idempotent && IsRetryable(err) && attempt < c.retry.MaxAttempts {
				if werr := c.wait(ctx, log, c.jitter(backoff.Step()), attempt, err); werr != nil {
					return werr
				}
				continue
			}
			return err
		}
		if status >= 200 && status < 300 {
			log.V(1).Info("Adobe request done", "status", status, "requestId", header.Get("x-request-id"), "attempt", attempt)
			if out == nil || len(bytes.TrimSpace(respBody)) == 0 {
				return nil
			}
			if err := json.Unmarshal(respBody, out); err != nil {
				return fmt.Errorf("decode %s answer: %w", cl.op, err)
			}
			return nil
		}

		secrets := redactable(token, s.ClientSecret)
		respBody = []byte(excerpt.Redact(string(respBody), secrets...))
		apiErr := parseError(status, header, respBody, c.now())
		scrubError(apiErr, secrets...)
		log.V(1).Info("Adobe request answered an error", "status", status, "code", apiErr.Code,
			"requestId", apiErr.RequestID, "attempt", attempt)

		// An expired or revoked token (gateway 401013) is renewed once per
		// call; a second 401 means the credential itself is not accepted.
		if status == http.StatusUnauthorized && !renewedToken {
			renewedToken = true
			tokens.Invalidate(token)
			attempt--
			continue
		}
		if !c.shouldRetry(cl, apiErr) || attempt >= c.retry.MaxAttempts {
			return apiErr
		}
		// A Retry-After wait still takes its step, so the backoff after it
		// grows as if the server had not named a wait.
		delay := c.jitter(backoff.Step())
		if apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > c.retry.MaxRetryAfter {
				return apiErr
			}
			delay = apiErr.RetryAfter
		}
		if werr := c.wait(ctx, log, delay, attempt, apiErr); werr != nil {
			return werr
		}
	}
}

func (c *Client) shouldRetry(cl call, e *Error) bool {
	if !isRetryableError(e) {
		return false
	}
	if cl.idempotent {
		return true
	}
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable
}

// wait sleeps d before the next try. Retries stay inside the caller's
// deadline: a wait that would end at or past it is not started, and the last
// failure comes back at once, marked as a deadline hit (errors.Is
// context.DeadlineExceeded) while still carrying Adobe's answer.
func (c *Client) wait(ctx context.Context, log logr.Logger, d time.Duration, attempt int, cause error) error {
	if deadline, ok := ctx.Deadline(); ok {
		if left := deadline.Sub(c.now()); d >= left {
			return fmt.Errorf("give up retrying: the %s wait would end past the deadline (%s left) after %w: %w",
				d, max(left, 0), cause, context.DeadlineExceeded)
		}
	}
	log.V(1).Info("retrying Adobe request", "attempt", attempt, "wait", d.String(), "error", cause.Error())
	if err := c.sleep(ctx, d); err != nil {
		return fmt.Errorf("wait to retry after %w: %w", cause, err)
	}
	return nil
}

// rateWaitError explains a refused rate-limit wait. rate.Limiter refuses a
// wait that would pass ctx's deadline up front, with a plain error; with a
// deadline set, that is what a refusal means, so it is marked as one.
func rateWaitError(ctx context.Context, which string, err error) error {
	_, hasDeadline := ctx.Deadline()
	if hasDeadline && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("wait for the %s rate limit: %w: %w", which, err, context.DeadlineExceeded)
	}
	return fmt.Errorf("wait for the %s rate limit: %w", which, err)
}

// send makes one HTTP request and reads the whole answer within the
// per-request timeout.
func (c *Client) send(ctx context.Context, cl call, s Scope, token string, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.url(cl), rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("x-api-key", s.ClientID)
	req.Header.Set("x-gw-ims-org-id", s.OrgID)
	req.Header.Set("x-sandbox-name", s.SandboxName)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.ifMatch != "" {
		req.Header.Set("If-Match", cl.ifMatch)
	}

	start := time.Now()
	resp, err := c.httpClient.Do(req)
	if err != nil {
		observe(cl.op, "error", time.Since(start))
		return 0, nil, nil, err // *url.Error: method, URL (no credentials) and cause
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	observe(cl.op, strconv.Itoa(resp.StatusCode), time.Since(start))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read answer: %w", cl.method, cl.api+cl.path, err)
	}
	return resp.StatusCode, resp.Header, respBody, nil
}
