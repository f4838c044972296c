// Package ims gets Adobe IMS access tokens with the OAuth server-to-server
// (client credentials) grant and shares them across the whole process.
//
// Many CapillarySources usually point at the same Secret, so one Cache keyed by
// IMS URL, client ID, a hash of the secret and the scopes serves them all with
// one token, refreshed ahead of its expiry, and concurrent callers wait on one
// in-flight request instead of each asking IMS.
package ims

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sync/singleflight"

	"github.com/aepoperator/capillary-operator/internal/excerpt"
	"github.com/aepoperator/capillary-operator/internal/httpretry"
)

const (
	// DefaultURL is Adobe's production IMS host.
	DefaultURL = "https://ims-na1.adobelogin.com"
	// TokenPath is the OAuth server-to-server token endpoint under the IMS URL.
	TokenPath = "/ims/token/v3"
	// DefaultScopes are the scopes Adobe's Experience Platform examples request.
	DefaultScopes = "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"

	// DefaultTimeout bounds one token request.
	DefaultTimeout = 30 * time.Second

	// refreshLead is how long before expiry a token is replaced at the latest.
	refreshLead = 5 * time.Minute
	// refreshFraction of a token's life after which it is replaced at the latest.
	refreshFraction = 0.9
	// msThreshold: an expires_in above this cannot be seconds (it would be
	// over 11 days for a 24h token) and is read as milliseconds, the unit the
	// legacy IMS endpoints answer in (Adobe's Capillary page shows 86399994).
	msThreshold = 1e6
	// staleGrace is how long before expiry a cached token may still be handed
	// out when its refresh failed transiently.
	staleGrace = 30 * time.Second
)

// Request names one credential at one IMS endpoint.
type Request struct {
	// URL is the IMS base URL, e.g. https://ims-na1.adobelogin.com.
	URL          string
	ClientID     string
	ClientSecret string
	// Scopes requested; DefaultScopes when empty. IMS v3 wants them comma-separated.
	Scopes []string
}

// String keeps the secret out of anything that prints a Request.
func (r Request) String() string {
	return fmt.Sprintf("ims.Request{URL:%s ClientID:%s ClientSecret:[redacted] Scopes:%s}", r.URL, r.ClientID, r.scope())
}

// GoString keeps the secret out of %#v.
func (r Request) GoString() string { return r.String() }

// MarshalLog keeps the secret out of structured logs (logr.Marshaler).
func (r Request) MarshalLog() any {
	return struct{ URL, ClientID, Scopes string }{r.URL, r.ClientID, r.scope()}
}

func (r Request) scope() string {
	if len(r.Scopes) == 0 {
		return DefaultScopes
	}
	return strings.Join(r.Scopes, ",")
}

func (r Request) tokenURL() string {
	base := strings.TrimRight(r.URL, "/")
	if base == "" {
		base = DefaultURL
	}
	return base + TokenPath
}

// key identifies a cache entry. The secret is kept only as a hash, so a rotated
// secret gets its own token and the cache never holds the secret itself.
type key struct {
	tokenURL, clientID, secretHash, scope string
}

func (k key) String() string {
	return strings.Join([]string{k.tokenURL, k.clientID, k.secretHash, k.scope}, "\x00")
}

// fingerprint is a short, non-reversible label for a credential in logs.
func (k key) fingerprint() string {
	sum := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(sum[:4])
}

func (r Request) key() key {
	sum := sha256.Sum256([]byte(r.ClientSecret))
	return key{tokenURL: r.tokenURL(), clientID: r.ClientID, secretHash: hex.EncodeToString(sum[:]), scope: r.scope()}
}

// Token is an IMS access token and when it stops being valid.
type Token struct {
	AccessToken string
	Expiry      time.Time
	// RefreshAt is when the cache replaces it (before Expiry).
	RefreshAt time.Time
}

// String keeps the token out of anything that prints a Token.
func (t Token) String() string {
	return fmt.Sprintf("ims.Token{AccessToken:[redacted] Expiry:%s}", t.Expiry.Format(time.RFC3339))
}

// GoString keeps the token out of %#v.
func (t Token) GoString() string { return t.String() }

// MarshalLog keeps the token out of structured logs.
func (t Token) MarshalLog() any { return struct{ Expiry time.Time }{t.Expiry} }

// Cache fetches and shares IMS tokens. One Cache serves the whole process; it
// is safe for concurrent use.
type Cache struct {
	httpClient *http.Client
	now        func() time.Time
	timeout    time.Duration

	mu      sync.Mutex
	entries map[key]Token
	flight  singleflight.Group
}

// Option configures a Cache.
type Option func(*Cache)

// WithHTTPClient sets the client used to reach IMS.
func WithHTTPClient(c *http.Client) Option { return func(x *Cache) { x.httpClient = c } }

// WithClock sets the time source (tests move it to cross refresh points).
func WithClock(now func() time.Time) Option { return func(x *Cache) { x.now = now } }

// WithTimeout bounds one token request.
func WithTimeout(d time.Duration) Option { return func(x *Cache) { x.timeout = d } }

// NewCache returns an empty token cache.
func NewCache(opts ...Option) *Cache {
	registerMetrics()
	c := &Cache{
		httpClient: http.DefaultClient,
		now:        time.Now,
		timeout:    DefaultTimeout,
		entries:    map[key]Token{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Token returns a valid token for r, from the cache when it is not yet due for
// refresh, otherwise from IMS. Concurrent callers for the same credential share
// one IMS request; each still returns as soon as its own ctx is done.
func (c *Cache) Token(ctx context.Context, r Request) (Token, error) {
	k := r.key()
	now := c.now()
	c.mu.Lock()
	cached, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Before(cached.RefreshAt) {
		return cached, nil
	}

	// The shared fetch must not die with whichever caller started it, so it
	// runs detached from that caller's cancellation (keeping its logger) and
	// is bounded by the cache's own timeout instead.
	fetchCtx := context.WithoutCancel(ctx)
	ch := c.flight.DoChan(k.String(), func() (any, error) {
		return c.fetch(fetchCtx, r, k)
	})
	select {
	case <-ctx.Done():
		return Token{}, fmt.Errorf("wait for IMS token: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			// A refresh that failed for a passing reason should not take down
			// callers while the token they already have is still good.
			if ok && IsTransient(res.Err) && c.now().Before(cached.Expiry.Add(-staleGrace)) {
				logr.FromContextOrDiscard(ctx).V(1).Info("IMS token refresh failed, using the cached token until it expires",
					"credential", k.fingerprint(), "error", res.Err.Error())
				return cached, nil
			}
			return Token{}, res.Err
		}
		return res.Val.(Token), nil
	}
}

// Invalidate drops a token that Platform rejected (gateway code 401013), so the
// next Token call fetches a new one. Unknown tokens are ignored: another caller
// may have replaced it already.
func (c *Cache) Invalidate(accessToken string) {
	if accessToken == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.entries {
		if t.AccessToken == accessToken {
			delete(c.entries, k)
		}
	}
}

func (c *Cache) fetch(ctx context.Context, r Request, k key) (Token, error) {
	// A caller that queued behind a fetch which just finished finds the new
	// token here instead of asking IMS again.
	now := c.now()
	c.mu.Lock()
	if t, ok := c.entries[k]; ok && now.Before(t.RefreshAt) {
		c.mu.Unlock()
		return t, nil
	}
	c.mu.Unlock()

	log := logr.FromContextOrDiscard(ctx).WithValues("imsURL", k.tokenURL, "credential", k.fingerprint())
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.httpClient)

	conf := clientcredentials.Config{
		ClientID:     r.ClientID,
		ClientSecret: r.ClientSecret,
		TokenURL:     k.tokenURL,
		// IMS v3 takes a comma-separated list; clientcredentials joins Scopes
		// with spaces, so the list goes in as one element.
		Scopes: []string{k.scope},
		// The secret goes in the POST form body, never a header or the query.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	issued := c.now()
	tok, err := conf.Token(ctx)
	if err != nil {
		err = c.convertError(err, r.ClientSecret)
		tokenRequests.WithLabelValues(resultLabel(err)).Inc()
		log.V(1).Info("IMS token request failed", "error", err.Error())
		return Token{}, err
	}

	// oauth2 turns expires_in into an Expiry in seconds from time.Now. IMS
	// endpoints disagree on the unit, so read the raw value it keeps in Extra
	// and apply the millisecond guard and our clock ourselves.
	life, err := lifetime(tok.Extra("expires_in"))
	if err != nil {
		err = &Error{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Description: err.Error()}
		tokenRequests.WithLabelValues(resultLabel(err)).Inc()
		return Token{}, err
	}
	t := Token{
		AccessToken: tok.AccessToken,
		Expiry:      issued.Add(life),
		RefreshAt:   issued.Add(refreshAfter(life)),
	}
	tokenRequests.WithLabelValues("success").Inc()
	log.V(1).Info("got IMS token", "expiresIn", life.String())

	c.mu.Lock()
	for ek, et := range c.entries {
		if !issued.Before(et.Expiry) {
			delete(c.entries, ek) // expired entries of rotated or removed credentials
		}
	}
	c.entries[k] = t
	c.mu.Unlock()
	return t, nil
}

// lifetime reads expires_in (number or numeric string) as seconds, or as
// milliseconds when it is too large to be seconds.
func lifetime(raw any) (time.Duration, error) {
	var v float64
	switch x := raw.(type) {
	case float64:
		v = x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return 0, fmt.Errorf("expires_in %q is not a number", x.String())
		}
		v = f
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("expires_in %q is not a number", x)
		}
		v = f
	case nil:
		return 0, errors.New("expires_in is missing")
	default:
		return 0, fmt.Errorf("expires_in has type %T", raw)
	}
	if math.IsNaN(v) || v <= 0 {
		return 0, fmt.Errorf("expires_in %v is not positive", v)
	}
	if v > msThreshold {
		return time.Duration(v * float64(time.Millisecond)), nil
	}
	return time.Duration(v * float64(time.Second)), nil
}

// refreshAfter is how long after issue a token is replaced: at 90% of its life
// or 5 minutes before expiry, whichever comes first. Lives shorter than the
// 5-minute lead use the 90% point alone, so a short-lived token is still used.
func refreshAfter(life time.Duration) time.Duration {
	frac := time.Duration(float64(life) * refreshFraction)
	if lead := life - refreshLead; lead > 0 && lead < frac {
		return lead
	}
	return frac
}

// convertError maps oauth2's errors to *Error, dropping the raw body oauth2
// would print and scrubbing the secret from anything IMS echoed back.
func (c *Cache) convertError(err error, secret string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		e := &Error{
			Code:        re.ErrorCode,
			Description: excerpt.Redact(re.ErrorDescription, secret),
		}
		if re.Response != nil {
			e.StatusCode = re.Response.StatusCode
			e.DebugID = re.Response.Header.Get("X-Debug-Id")
			e.RetryAfter = httpretry.RetryAfter(re.Response.Header.Get("Retry-After"), c.now())
		}
		if e.Description == "" && e.Code == "" {
			e.Description = excerpt.Body(re.Body, secret)
		}
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("request IMS token: %w", err)
	}
	msg := err.Error()
	// oauth2 reports an unusable 2xx body with plain errors.
	if strings.HasPrefix(msg, "oauth2: server response missing access_token") ||
		strings.HasPrefix(msg, "oauth2: cannot parse") {
		return &Error{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Description: excerpt.Redact(msg, secret)}
	}
	return fmt.Errorf("request IMS token: %w", err)
}

func resultLabel(err error) string {
	switch {
	case IsTerminal(err):
		return "terminal"
	case IsTransient(err):
		return "transient"
	default:
		return "error"
	}
}

// Source binds a Cache to one IMS endpoint and scope list, giving the
// per-credential Token/Invalidate pair Platform clients need.
type Source struct {
	cache  *Cache
	url    string
	scopes []string
}

// Source returns a view of c for one IMS URL and scope list (DefaultScopes
// when none are given).
func (c *Cache) Source(imsURL string, scopes ...string) *Source {
	return &Source{cache: c, url: imsURL, scopes: scopes}
}

// Token returns an access token for the client credential.
func (s *Source) Token(ctx context.Context, clientID, clientSecret string) (string, error) {
	t, err := s.cache.Token(ctx, Request{URL: s.url, ClientID: clientID, ClientSecret: clientSecret, Scopes: s.scopes})
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// Invalidate drops a rejected token.
func (s *Source) Invalidate(accessToken string) { s.cache.Invalidate(accessToken) }
