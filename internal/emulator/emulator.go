// Package emulator is a local stand-in for the parts of Adobe Experience
// Platform the operator talks to: IMS client-credentials tokens, Flow Service
// (connection and flow specs, source and target connections, dataflows) and
// Data Prep mapping sets. It follows Adobe's wire format (status codes, list
// wrappers, quoted etags, error bodies), can validate every request against
// Adobe's OpenAPI specs, and injects faults reproducibly from a seed: latency,
// 503 with Retry-After, 429, lost responses (committed, then answered 500 or
// dropped), token expiry and out-of-band deletion.
//
// An Emulator is an http.Handler; Start serves it on a loopback port.
// Introspection (stored objects, call counts, fault settings) is available
// through the Go API and as JSON under /__emulator/, a prefix Adobe never uses.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aepoperator/capillary-operator/internal/httpretry"
)

// DefaultAddr is where Start listens when given an empty address.
const DefaultAddr = "127.0.0.1:0"

// DefaultTokenLifetime matches the expires_in Adobe's IMS returns (86399 s).
const DefaultTokenLifetime = 86399 * time.Second

// URL path prefixes, as on platform.adobe.io and ims-na1.adobelogin.com.
const (
	IMSTokenPath      = "/ims/token/v3"
	FlowServicePrefix = "/data/foundation/flowservice"
	DataPrepPrefix    = "/data/foundation/conversion"
	CollectionPrefix  = "/collection"
	IntrospectPrefix  = "/__emulator"
)

// RequestValidator checks a Platform request against Adobe's OpenAPI specs.
// *aepspec.Validator implements it. ValidateRequest must leave r.Body
// readable.
type RequestValidator interface {
	ValidateRequest(r *http.Request) error
}

// Options configure an Emulator. The zero value is usable: no credentials
// (add some with AddCredential), no validation, no faults.
type Options struct {
	// Credentials maps IMS client IDs to client secrets.
	Credentials map[string]string
	// TokenLifetime is the lifetime of issued access tokens, reported in
	// expires_in as whole seconds; zero means DefaultTokenLifetime.
	TokenLifetime time.Duration
	// SpecValidator, when set, validates every Platform request after the
	// gateway checks; a request that does not conform is answered 400 with
	// the validation error.
	SpecValidator RequestValidator
	// Faults configures fault injection; it can be changed with SetFaults.
	Faults Faults
	// RateLimit is the gateway's per-credential limit (429 with
	// Retry-After beyond it); zero: none. It can be changed with
	// SetRateLimit. See docs/emulator.md, "Rate limit".
	RateLimit RateLimit
	// StateFile, when set, is loaded by New and rewritten after every change,
	// so a restarted emulator keeps its objects (not its tokens).
	StateFile string
	// Logger receives one debug line per request; nil discards. Tokens,
	// secrets and bodies are never logged.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Sleep waits for the injected latency; nil means a timer that gives up
	// when ctx ends. Tests replace it to avoid waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// BaseURL is the emulator's own address as callers see it, used in
	// flows' options.inletUrl. Empty means the address Start bound, or the
	// request's Host when served some other way.
	BaseURL string
	// AllowRemote lets Start listen on non-loopback addresses.
	AllowRemote bool

	// ConnectionAuth selects the Capillary connection spec's authSpec and
	// what its inlets demand; empty means ConnectionAuthNone. See
	// docs/emulator.md.
	ConnectionAuth ConnectionAuth
	// HMACSecretOverlap, when positive, keeps accepting signatures made with
	// a base connection's previous shared secret for this long after a PATCH
	// replaced it. Zero (the default) accepts only the current secret.
	// Whether Adobe overlaps secrets is unpublished: the emulator's
	// assumption, off unless asked for.
	HMACSecretOverlap time.Duration
	// InletWarmup is how long after a streaming dataflow is created, or its
	// mapping changed by a PATCH, its inlet drops what it accepts. Adobe asks
	// for "a brief 5-minute pause in data ingestion" after creating or
	// updating a streaming dataflow "to prevent any potential instances of
	// data loss or data drops"; zero (the default) models no pause. See
	// docs/emulator.md, "Warm-up".
	InletWarmup time.Duration

	// Terminal answers, for tests of non-retryable failures.

	// UnentitledOrgs lists orgs whose Platform requests get 403
	// FLOW-2118-403 (missing permission).
	UnentitledOrgs []string
	// Sandboxes, when non-empty, lists the sandboxes that exist; requests
	// naming another get 404 FLOW-2100-404.
	Sandboxes []string
	// RejectDatasets lists dataset IDs a target connection may not write to
	// (400 FLOW-1100-400).
	RejectDatasets []string
	// RejectMappings lists XDM destination paths Data Prep refuses: a mapping
	// set that maps to one is answered 400.
	RejectMappings []string
}

type tokenInfo struct {
	clientID string
	expires  time.Time
}

// Emulator serves the emulated Adobe APIs. It is safe for concurrent use.
type Emulator struct {
	opts      Options
	log       *slog.Logger
	clock     func() time.Time
	sleep     func(context.Context, time.Duration) error
	lifetime  time.Duration
	validator RequestValidator
	faults    *faultInjector
	limits    gatewayLimiter
	calls     callRecorder
	mux       *http.ServeMux

	unentitled map[string]bool
	sandboxes  map[string]bool
	rejectDS   map[string]bool
	rejectMap  map[string]bool

	// connAuth is the variant served; connSpecs the connection specs with
	// its authSpec. authSchemas holds the compiled authSpec schemas (key:
	// connection spec ID and authSpec name), optionSchemas the optionSpec
	// schemas (key: flow spec ID).
	connAuth      ConnectionAuth
	connSpecs     specSet
	authSchemas   map[string]*paramSchema
	optionSchemas map[string]*paramSchema

	mu     sync.Mutex // guards the fields below
	creds  map[string]string
	tokens map[string]tokenInfo
	// refused holds client IDs whose tokens Platform refuses (RefuseTokens).
	refused map[string]bool
	store   store
	srv     *http.Server
	baseURL string
	// mappingChanged holds, per flow, when a PATCH last changed its
	// transformations (epoch ms); records logs posted records for
	// introspection.
	mappingChanged map[string]int64
	records        []Record
	// prevSecrets holds, per base connection, the shared secret a PATCH
	// replaced and until when it is still accepted (HMACSecretOverlap).
	prevSecrets map[string]prevSecret
}

// New returns an Emulator, loading Options.StateFile when it exists.
func New(opts Options) (*Emulator, error) {
	if err := opts.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("invalid faults: %w", err)
	}
	if opts.TokenLifetime < 0 {
		return nil, errors.New("token lifetime must not be negative")
	}
	connAuth, err := ParseConnectionAuth(string(opts.ConnectionAuth))
	if err != nil {
		return nil, err
	}
	if opts.HMACSecretOverlap < 0 {
		return nil, errors.New("HMAC secret overlap must not be negative")
	}
	if opts.InletWarmup < 0 {
		return nil, errors.New("inlet warm-up must not be negative")
	}
	if err := opts.RateLimit.Validate(); err != nil {
		return nil, err
	}
	e := &Emulator{
		opts:       opts,
		log:        opts.Logger,
		clock:      opts.Clock,
		sleep:      opts.Sleep,
		lifetime:   opts.TokenLifetime,
		validator:  opts.SpecValidator,
		faults:     newFaultInjector(opts.Faults),
		unentitled: set(opts.UnentitledOrgs),
		sandboxes:  set(opts.Sandboxes),
		rejectDS:   set(opts.RejectDatasets),
		rejectMap:  set(opts.RejectMappings),
		creds:      map[string]string{},
		tokens:     map[string]tokenInfo{},
		refused:    map[string]bool{},
		store:      newStore(),
		baseURL:    strings.TrimSuffix(opts.BaseURL, "/"),
	}
	e.limits.set(opts.RateLimit)
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	if e.sleep == nil {
		e.sleep = httpretry.Sleep
	}
	if e.lifetime == 0 {
		e.lifetime = DefaultTokenLifetime
	}
	e.connAuth, e.connSpecs = connAuth, connectionSpecsFor(connAuth)
	e.prevSecrets = map[string]prevSecret{}
	e.mappingChanged = map[string]int64{}
	e.compileSchemas()
	for id, secret := range opts.Credentials {
		e.creds[id] = secret
	}
	if opts.StateFile != "" {
		st, err := loadStore(opts.StateFile)
		if err != nil {
			return nil, err
		}
		e.store = st
	}
	e.mux = e.routes()
	return e, nil
}

func set(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mux.ServeHTTP(w, r)
}

// Start listens on addr (DefaultAddr when empty) and serves in the
// background. It refuses non-loopback addresses unless Options.AllowRemote.
// It returns the base URL, e.g. "http://127.0.0.1:40123", to use as both the
// IMS URL and the Platform URL.
func (e *Emulator) Start(addr string) (string, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if !e.opts.AllowRemote {
		if err := checkLoopback(addr); err != nil {
			return "", err
		}
	}
	e.mu.Lock()
	if e.srv != nil {
		e.mu.Unlock()
		return "", errors.New("emulator already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		e.mu.Unlock()
		return "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	url := "http://" + ln.Addr().String()
	e.srv = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	if e.baseURL == "" {
		e.baseURL = url
	}
	srv := e.srv
	e.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("emulator server stopped", "error", err)
		}
	}()
	e.log.Info("Adobe emulator listening", "url", url)
	return url, nil
}

// checkLoopback accepts host:port whose host is a loopback IP or "localhost".
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on non-loopback address %q (allow it explicitly to serve remote callers)", addr)
}

// URL returns the base URL callers use: Options.BaseURL, else the address
// Start bound; empty before Start when no BaseURL was given.
func (e *Emulator) URL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.baseURL
}

// Shutdown stops the server started by Start gracefully.
func (e *Emulator) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down emulator: %w", err)
	}
	return nil
}

// Close stops the server started by Start immediately.
func (e *Emulator) Close() error {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("close emulator: %w", err)
	}
	return nil
}

// AddCredential accepts (or replaces) an IMS client ID and secret.
func (e *Emulator) AddCredential(clientID, clientSecret string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.creds[clientID] = clientSecret
}

// RemoveCredential revokes a client ID and every token issued to it.
func (e *Emulator) RemoveCredential(clientID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.creds, clientID)
	for tok, info := range e.tokens {
		if info.clientID == clientID {
			delete(e.tokens, tok)
		}
	}
}

// RevokeTokens invalidates every token issued to clientID before it
// expires, as IMS does when it revokes them: Platform answers 401 401013 to
// them. New tokens are issued as before.
func (e *Emulator) RevokeTokens(clientID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for tok, info := range e.tokens {
		if info.clientID == clientID {
			delete(e.tokens, tok)
		}
	}
}

// RefuseTokens makes Platform answer 401 401013 to every token of clientID,
// those issued later included, until it is called with false: a credential
// IMS still issues tokens for whose Platform access was withdrawn.
func (e *Emulator) RefuseTokens(clientID string, refuse bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if refuse {
		e.refused[clientID] = true
	} else {
		delete(e.refused, clientID)
	}
}

// ExpireTokens makes every token issued so far expired; callers must fetch
// new ones.
func (e *Emulator) ExpireTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	for tok, info := range e.tokens {
		info.expires = now
		e.tokens[tok] = info
	}
}

// SetFaults replaces the fault configuration and reseeds the PRNG.
func (e *Emulator) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("invalid faults: %w", err)
	}
	e.faults.set(f)
	return nil
}

// Faults returns the current fault configuration.
func (e *Emulator) Faults() Faults { return e.faults.get() }

// Objects returns a snapshot of every stored object.
func (e *Emulator) Objects() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.store.snapshot(e.view)
}

// ConnectionAuth returns the connection-spec variant this emulator serves.
func (e *Emulator) ConnectionAuth() ConnectionAuth { return e.connAuth }

// Vanish deletes an object out of band, as someone using the Adobe UI would:
// no reference checks, no call counted. It reports whether the object
// existed.
func (e *Emulator) Vanish(kind Kind, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.store.delete(kind, id) {
		return false
	}
	e.persistLocked()
	return true
}

// Modify changes an object out of band (drift): mutate receives a copy of
// the document and may change any field. The etag changes (mapping sets get a
// new version). It reports whether the object existed.
func (e *Emulator) Modify(kind Kind, id string, mutate func(doc map[string]any)) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.store.objects[kind][id]
	if r == nil {
		return false
	}
	doc := cloneMap(r.Doc)
	mutate(doc)
	now := e.clock().UnixMilli()
	if kind == KindMappingSet {
		v := intField(r.Doc, "version") + 1
		doc["version"] = float64(v)
		doc["modifiedDate"] = float64(now)
		r.History = append(r.History, cloneMap(doc))
	} else {
		etag := newETag()
		doc["etag"], doc["version"], doc["updatedAt"] = etag, etag, float64(now)
	}
	doc["id"] = id
	r.Doc = doc
	e.persistLocked()
	return true
}

// Calls returns the call counts since New or the last ResetCalls.
func (e *Emulator) Calls() CallCounts { return e.calls.snapshot() }

// ResetCalls zeroes the call counts.
func (e *Emulator) ResetCalls() { e.calls.reset() }

// persistLocked writes the state file; e.mu must be held. A write failure is
// logged, not returned: the in-memory state stays authoritative.
func (e *Emulator) persistLocked() {
	if e.opts.StateFile == "" {
		return
	}
	if err := e.store.save(e.opts.StateFile); err != nil {
		e.log.Error("save emulator state", "error", err)
	}
}

// baseURLFor returns the URL callers reach the emulator at.
func (e *Emulator) baseURLFor(r *http.Request) string {
	e.mu.Lock()
	base := e.baseURL
	e.mu.Unlock()
	if base != "" {
		return base
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
