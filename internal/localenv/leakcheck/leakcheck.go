// Package leakcheck records what the operator sends to Adobe and checks that
// no credential leaks: not into what the operator writes (logs, events,
// CapillarySource status) and not into a URL. The chaos, bad-input, HA and
// security suites each wire it into their manager and scan at the end of
// their run.
package leakcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// imsTokenPath is where the client credential goes (ims.TokenPath).
const imsTokenPath = "/ims/token/v3"

// minSecretLen: shorter strings would match by accident and are no secret.
const minSecretLen = 6

// Recorder is an http.RoundTripper that remembers every credential the
// operator used: the client secrets it sent to IMS, the access tokens IMS
// issued, the bearer tokens it sent to Platform, and every URL it called.
type Recorder struct {
	base http.RoundTripper

	mu       sync.Mutex
	secrets  map[string]string // value → kind
	requests []Request
}

// Request is one request the operator made.
type Request struct {
	Time   time.Time
	Method string
	URL    *url.URL
}

// NewRecorder wraps base (http.DefaultTransport when nil).
func NewRecorder(base http.RoundTripper) *Recorder {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Recorder{base: base, secrets: map[string]string{}}
}

// Client returns an HTTP client for manager.Options.HTTPClient.
func (r *Recorder) Client() *http.Client { return &http.Client{Transport: r} }

// AddSecret adds values the scan must look for (client secrets a test put in
// a Secret, wrong ones included).
func (r *Recorder) AddSecret(kind string, values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		if len(v) >= minSecretLen {
			r.secrets[v] = kind
		}
	}
}

// Secrets returns every credential seen or added, with its kind.
func (r *Recorder) Secrets() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.secrets))
	for k, v := range r.secrets {
		out[k] = v
	}
	return out
}

// Requests returns every request made, in order.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// Tokens counts the access tokens seen.
func (r *Recorder) Tokens() int {
	n := 0
	for _, kind := range r.Secrets() {
		if kind == KindToken {
			n++
		}
	}
	return n
}

// Kinds of credential.
const (
	KindClientSecret = "client secret"
	KindToken        = "access token"
)

// RoundTrip implements http.RoundTripper.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	r.mu.Lock()
	r.requests = append(r.requests, Request{Time: time.Now(), Method: req.Method, URL: &u})
	r.mu.Unlock()

	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		r.AddSecret(KindToken, tok)
	}
	isIMS := req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, imsTokenPath)
	if isIMS && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("leakcheck: read IMS request: %w", err)
		}
		if form, err := url.ParseQuery(string(body)); err == nil {
			r.AddSecret(KindClientSecret, form.Get("client_secret"))
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil || !isIMS {
		return resp, err
	}
	// Tokens IMS issued, even those never used on Platform.
	body, rerr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" && json.Unmarshal(body, &tok) == nil {
		r.AddSecret(KindToken, tok.AccessToken)
	}
	return resp, nil
}

// credentialQueryKeys are query parameters that would carry a credential.
var credentialQueryKeys = []string{"client_id", "client_secret", "access_token", "token", "api_key", "apikey", "x-api-key", "password", "secret", "assertion", "code"}

// URLFindings reports every request whose URL carries a credential: a
// credential-named query parameter, userinfo, or any recorded secret value.
func (r *Recorder) URLFindings() []Finding {
	secrets := r.Secrets()
	var out []Finding
	for i, req := range r.Requests() {
		where := fmt.Sprintf("request %d (%s %s)", i, req.Method, req.URL.Path)
		if req.URL.User != nil {
			out = append(out, Finding{Where: where, What: "userinfo in the URL"})
		}
		q := req.URL.Query()
		for _, k := range credentialQueryKeys {
			if q.Has(k) {
				out = append(out, Finding{Where: where, What: "query parameter " + k})
			}
		}
		raw := req.URL.String()
		unescaped, _ := url.QueryUnescape(raw)
		for s, kind := range secrets {
			if strings.Contains(raw, s) || strings.Contains(unescaped, s) {
				out = append(out, Finding{Where: where, What: fmt.Sprintf("a %s (%d chars) in the URL", kind, len(s))})
			}
		}
	}
	return out
}

// Finding is one leak. It never holds the secret itself.
type Finding struct {
	Where string
	What  string
}

func (f Finding) String() string { return f.Where + ": " + f.What }

// Log is a concurrency-safe buffer for the operator's logs.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// CaptureLogs sends every log line of controller-runtime, the operator and
// client-go (klog), at the most verbose level, to a new Log; tee, when not
// nil, gets a copy.
func CaptureLogs(tee io.Writer) *Log {
	l := &Log{}
	var w io.Writer = l
	if tee != nil {
		w = io.MultiWriter(l, tee)
	}
	logger := zap.New(zap.WriteTo(w), zap.UseDevMode(true), zap.Level(zapcore.Level(-127)))
	logf.SetLogger(logger)
	klog.SetLogger(logger)
	return l
}

// History records every version of every CapillarySource the API server
// served while it ran, so statuses written mid-run are scanned too.
type History struct {
	mu       sync.Mutex
	versions [][]byte
	cancel   context.CancelFunc
	done     chan struct{}
}

// WatchSources starts recording CapillarySources in every namespace.
func WatchSources(cfg *rest.Config) (*History, error) {
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("leakcheck: watch client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &History{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		rv := ""
		for ctx.Err() == nil {
			w, err := c.Watch(ctx, &v1alpha1.CapillarySourceList{}, &client.ListOptions{Raw: watchOptions(rv)})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					rv = "" // expired: start over
					continue
				}
				cs, ok := ev.Object.(*v1alpha1.CapillarySource)
				if !ok {
					continue
				}
				rv = cs.ResourceVersion
				b, _ := json.Marshal(cs)
				h.mu.Lock()
				h.versions = append(h.versions, b)
				h.mu.Unlock()
			}
			w.Stop()
		}
	}()
	return h, nil
}

// Stop ends the watch.
func (h *History) Stop() {
	h.cancel()
	<-h.done
}

// Len is the number of versions recorded.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.versions)
}

func (h *History) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(bytes.Join(h.versions, []byte("\n")))
}

// Scan looks for every secret the recorder knows in the logs, in every
// CapillarySource version the history saw and in every event (events.k8s.io
// and core) and CapillarySource now in the cluster. It also returns the URL
// findings. It errors when the scan would prove nothing: no token seen, or no
// event or status to look at.
func Scan(ctx context.Context, c client.Client, rec *Recorder, logs *Log, hist *History) ([]Finding, error) {
	secrets := rec.Secrets()
	if rec.Tokens() == 0 {
		return nil, fmt.Errorf("leakcheck: no access token was recorded: is the Recorder the manager's HTTP client?")
	}
	haystacks := map[string]string{"operator logs": logs.String()}
	if hist != nil {
		if hist.Len() == 0 {
			return nil, fmt.Errorf("leakcheck: the watch saw no CapillarySource")
		}
		haystacks["CapillarySource versions written during the run"] = hist.text()
	}
	var evs eventsv1.EventList
	if err := c.List(ctx, &evs); err != nil {
		return nil, fmt.Errorf("leakcheck: list events.k8s.io events: %w", err)
	}
	var core corev1.EventList
	if err := c.List(ctx, &core); err != nil {
		return nil, fmt.Errorf("leakcheck: list core events: %w", err)
	}
	if len(evs.Items)+len(core.Items) == 0 {
		return nil, fmt.Errorf("leakcheck: no event in the cluster: are events recorded?")
	}
	var sources v1alpha1.CapillarySourceList
	if err := c.List(ctx, &sources); err != nil {
		return nil, fmt.Errorf("leakcheck: list CapillarySources: %w", err)
	}
	for name, v := range map[string]any{"events (events.k8s.io/v1)": evs, "events (v1)": core, "CapillarySources": sources} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		haystacks[name] = string(b)
	}
	var out []Finding
	for where, text := range haystacks {
		for s, kind := range secrets {
			if i := strings.Index(text, s); i >= 0 {
				out = append(out, Finding{Where: where, What: fmt.Sprintf("a %s (%d chars) at offset %d", kind, len(s), i)})
			}
		}
	}
	out = append(out, rec.URLFindings()...)
	slices.SortFunc(out, func(a, b Finding) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// Summary says what a clean scan covered, for the test output.
func Summary(rec *Recorder, logs *Log, hist *History) string {
	n := map[string]int{}
	for _, kind := range rec.Secrets() {
		n[kind]++
	}
	versions := 0
	if hist != nil {
		versions = hist.Len()
	}
	return fmt.Sprintf("secret scan: %d client secrets and %d access tokens looked for in %d bytes of logs, %d CapillarySource versions, all events and %d request URLs",
		n[KindClientSecret], n[KindToken], len(logs.String()), versions, len(rec.Requests()))
}

func watchOptions(rv string) *metav1.ListOptions {
	return &metav1.ListOptions{ResourceVersion: rv}
}
