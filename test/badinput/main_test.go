package badinput_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

// What the emulator refuses, for the cases that need Adobe to say no.
const (
	unentitledOrg  = "0BAD0000000000000000403A@AdobeOrg"
	refusedDataset = "refused-dataset"
	refusedXDMPath = "_acme.notInSchema"
)

var (
	suite = &localenvtest.Suite{
		Emulator: emulator.Options{
			UnentitledOrgs: []string{unentitledOrg},
			RejectDatasets: []string{refusedDataset},
			RejectMappings: []string{refusedXDMPath},
		},
		// Cases run sixteen at a time on shared cores.
		Timeout: 90 * time.Second,
	}
	// rec records the operator's requests for the final secret scan; each
	// case adds its client secret.
	rec   = suite.NewRecorder("", nil)
	dyn   dynamic.Interface
	adobe *proxy
	op    *localenv.Manager
	// credentialsNamespace holds the Secrets of the cases' ClusterAdobeCredentials.
	credentialsNamespace string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

// caseParallelism: the runtime cases spend most of their time watching a
// quiet window, so they run together even on two cores (unless -parallel
// says otherwise).
const caseParallelism = "16"

func run(m *testing.M) int {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", caseParallelism)
	}
	suite.Setup = startOperator
	return suite.Main(m)
}

// startOperator runs one operator for every case, with production timings
// except the resync, pointed at the proxy in front of the emulator.
func startOperator() (stop func() error, err error) {
	env := suite.Env
	if dyn, err = dynamic.NewForConfig(env.Config); err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	if adobe, err = newProxy(env.AdobeURL); err != nil {
		return nil, err
	}
	credentials := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-credentials-"}}
	if err := env.Client.Create(context.Background(), credentials); err != nil {
		adobe.srv.Close()
		return nil, fmt.Errorf("credentials namespace: %w", err)
	}
	credentialsNamespace = credentials.Name
	o := env.ManagerOptions()
	o.ClusterCredentialsNamespace = credentialsNamespace
	o.IMSURL, o.PlatformURL = adobe.srv.URL, adobe.srv.URL
	o.HTTPClient = rec.Client()
	o.ResyncInterval = time.Hour
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	if op, err = env.StartManager(o); err != nil {
		adobe.srv.Close()
		return nil, fmt.Errorf("start operator: %w", err)
	}
	return func() error {
		defer adobe.srv.Close()
		if err := op.Stop(); err != nil {
			return fmt.Errorf("operator stopped with an error: %w", err)
		}
		return nil
	}, nil
}

// rule answers a request in Adobe's place when it returns true.
type rule func(w http.ResponseWriter, r *http.Request, op string) bool

// proxy stands in front of the emulator: it logs every call per client ID
// with the operation and the time it arrived (its own clock: the windows
// the cases watch are measured on it), and lets a case answer some calls
// itself (garbage, HTML, an hour's Retry-After, etag conflicts) without
// touching the other cases.
type proxy struct {
	srv *httptest.Server
	rp  *httputil.ReverseProxy

	mu    sync.Mutex
	rules map[string]rule
	calls map[string][]call
}

// call is one request the proxy saw.
type call struct {
	op string
	at time.Time
}

func newProxy(target string) (*proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &proxy{rp: httputil.NewSingleHostReverseProxy(u), rules: map[string]rule{}, calls: map[string][]call{}}
	p.srv = httptest.NewServer(p)
	return p, nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	clientID, op := identify(r)
	p.mu.Lock()
	p.calls[clientID] = append(p.calls[clientID], call{op: op, at: time.Now()})
	answer := p.rules[clientID]
	p.mu.Unlock()
	if answer != nil && answer(w, r, op) {
		return
	}
	p.rp.ServeHTTP(w, r)
}

// setRule makes rule answer the client's calls (nil: none).
func (p *proxy) setRule(clientID string, rl rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rl == nil {
		delete(p.rules, clientID)
		return
	}
	p.rules[clientID] = rl
}

// count returns the client's calls to the operations (all when none given).
func (p *proxy) count(clientID string, ops ...string) int {
	return p.countIn(clientID, time.Time{}, time.Now().Add(time.Hour), ops...)
}

// countIn returns the client's calls to the operations (all when none
// given) that arrived in [from, to).
func (p *proxy) countIn(clientID string, from, to time.Time, ops ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls[clientID] {
		if (len(ops) == 0 || slices.Contains(ops, c.op)) && !c.at.Before(from) && c.at.Before(to) {
			n++
		}
	}
	return n
}

// identify names the client (the form's client_id for IMS, x-api-key for
// Platform) and the operation, with the emulator's operation names.
func identify(r *http.Request) (clientID, op string) {
	if r.Method == http.MethodPost && r.URL.Path == emulator.IMSTokenPath {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		return form.Get("client_id"), emulator.OpIMSToken
	}
	clientID = r.Header.Get("x-api-key")
	path := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, emulator.FlowServicePrefix), emulator.DataPrepPrefix)
	parts := strings.Split(strings.Trim(path, "/"), "/")
	coll := parts[0]
	switch {
	case len(parts) == 1 && r.Method == http.MethodPost:
		op = coll + ".create"
	case len(parts) == 1:
		op = coll + ".list"
	case len(parts) == 3:
		op = coll + ".action"
	case r.Method == http.MethodGet:
		op = coll + ".get"
	case r.Method == http.MethodPatch:
		op = coll + ".patch"
	case r.Method == http.MethodPut:
		op = coll + ".update"
	case r.Method == http.MethodDelete:
		op = coll + ".delete"
	default:
		op = emulator.OpUnknown
	}
	return clientID, op
}
