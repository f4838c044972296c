// Package localenvtest is the harness the envtest+emulator suites share: a
// TestMain that starts internal/localenv (with Adobe's OpenAPI specs checking
// every request when they are available, and always in CI), captures the
// operator's logs and scans them, events and every CapillarySource version
// for leaked credentials once the tests pass; and the helpers that create,
// read, change and wait on CapillarySources. Only tests import it.
package localenvtest

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/localenv/leakcheck"
)

// What NewSource and CreateNamespace fill in.
const (
	OrgID      = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
	DatasetID  = "6889f4f89b982b2b90bc1207"
	SchemaID   = "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168"
	SecretName = "adobe"
)

// The mappings NewSource gives a resource.
var (
	PointsMapping        = v1alpha1.Mapping{SourceAttribute: "loyalty.points", DestinationXdmPath: "loyalty.points"}
	EmailIdentityMapping = v1alpha1.Mapping{SourceAttribute: "identityMap.email.id", DestinationXdmPath: "identityMap.email[0].id", Identity: true}
)

// defaultTimeout bounds WaitFor and WaitGone unless Suite.Timeout says otherwise.
const defaultTimeout = 60 * time.Second

// Suite is one test package's local environment. Set the configuration
// fields, call Main from TestMain, and use Env and the helpers in tests.
type Suite struct {
	// ClientID and ClientSecret are the credentials the emulator accepts and
	// CreateNamespace puts in the Secret; the leak scan looks for the secret.
	// Empty when each test brings its own (add them to the emulator and to
	// the recorder then).
	ClientID, ClientSecret string
	// Emulator configures the Adobe emulator.
	Emulator emulator.Options
	// ControlPlane configures the control plane (a fixed CertDir, for tests
	// that restart kube-apiserver).
	ControlPlane controlplane.Options
	// Timeout bounds WaitFor and WaitGone; default 60s.
	Timeout time.Duration
	// Setup runs once the environment is up, before the tests; the teardown
	// it returns (may be nil) runs after them, before the leak scan.
	Setup func() (teardown func() error, err error)
	// Scan, when set, replaces the leakcheck capture and scan: logs are not
	// captured, sources not watched, and Scan runs once the tests pass.
	Scan func() error
	// LeakCheck, once the tests pass, looks for goroutines they left
	// running (go.uber.org/goleak, against those running before them): a
	// manager, a watch or a worker not stopped. Connections kept open by
	// HTTP clients are not counted (see GoroutineLeaks).
	LeakCheck bool

	// Env is the running environment, set by Main.
	Env *localenv.Env
	// Logs and History are what the leak scan reads (nil with Scan set).
	Logs    *leakcheck.Log
	History *leakcheck.History

	mu        sync.Mutex
	recorders []namedRecorder
}

type namedRecorder struct {
	name string
	rec  *leakcheck.Recorder
}

// SpecsAvailable: Adobe's OpenAPI specs validate every request the operator
// sends when they are beside the repository; in CI (CI=true) they must be.
func SpecsAvailable() bool {
	if os.Getenv("CI") == "true" {
		return true
	}
	_, err := aepspec.Dir()
	return err == nil
}

// Main starts the environment, runs the tests and, when they pass, scans
// for leaked credentials every recorder that saw a request. It returns the
// exit code for os.Exit.
func (s *Suite) Main(m *testing.M) int {
	if s.Scan == nil {
		s.Logs = leakcheck.CaptureLogs(nil)
	}
	emu := s.Emulator
	if s.ClientID != "" {
		emu.Credentials = maps.Clone(emu.Credentials)
		if emu.Credentials == nil {
			emu.Credentials = map[string]string{}
		}
		emu.Credentials[s.ClientID] = s.ClientSecret
	}
	env, err := localenv.Start(localenv.Options{Emulator: emu, ValidateRequests: SpecsAvailable(), ControlPlane: s.ControlPlane})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local environment:", err)
		return 1
	}
	s.Env = env
	defer func() { _ = env.Stop() }()
	if s.Scan == nil {
		if s.History, err = leakcheck.WatchSources(env.Config); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer s.History.Stop()
	}
	var leakBaseline goleak.Option
	if s.LeakCheck {
		leakBaseline = goleak.IgnoreCurrent()
	}
	var teardown func() error
	if s.Setup != nil {
		if teardown, err = s.Setup(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	code := m.Run()
	if teardown != nil {
		if err := teardown(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	if code != 0 {
		return code
	}
	if s.Scan == nil {
		s.History.Stop() // its watch reconnects now and then: not a leak
	}
	if s.LeakCheck {
		if err := GoroutineLeaks(leakBaseline); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: goroutines left running by the tests:", err)
			return 1
		}
		fmt.Println("goleak: no goroutine left running by the tests")
	}
	if s.Scan != nil {
		if err := s.Scan(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
		return 0
	}
	return s.scan()
}

func (s *Suite) scan() int {
	s.mu.Lock()
	recorders := s.recorders
	s.mu.Unlock()
	for _, r := range recorders {
		if len(r.rec.Requests()) == 0 {
			continue // nothing ran with it (a standby that never led)
		}
		findings, err := leakcheck.Scan(context.Background(), s.Env.Client, r.rec, s.Logs, s.History)
		if err != nil {
			fmt.Fprintln(os.Stderr, "secret scan:", err)
			return 1
		}
		for _, f := range findings {
			fmt.Fprintln(os.Stderr, "secret scan: credential leaked:", f)
		}
		if len(findings) > 0 {
			return 1
		}
		summary := leakcheck.Summary(r.rec, s.Logs, s.History)
		if r.name != "" {
			summary = r.name + ": " + summary
		}
		fmt.Println(summary)
	}
	return 0
}

// GoroutineLeaks reports goroutines running beyond those opts ignore, once
// the idle connections of http.DefaultTransport are closed. It does not
// count what HTTP clients keep open on purpose (a connection's read and
// write loops on either side: the emulator and the API server clients live
// as long as the environment), nor apimachinery's watch.Filter loop, which
// leaks when a metadata watch is stopped with an event in hand
// (kubernetes/kubernetes#113254; test/soak bounds it), nor envtest's wait
// on a kube-apiserver process a test restarted.
func GoroutineLeaks(opts ...goleak.Option) error {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	opts = append(opts,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*http2serverConn).serve"),
		goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"),
		// envtest waiting on a kube-apiserver the tests restarted: part of
		// the environment, which lives until after the check.
		goleak.IgnoreAnyFunction("sigs.k8s.io/controller-runtime/pkg/internal/testing/process.(*State).Start.func1"),
	)
	return goleak.Find(opts...)
}

// NewRecorder returns a recorder wrapping base (http.DefaultTransport when
// nil) that the final scan covers, already told the suite's client secret.
// name, when set, labels its scan summary.
func (s *Suite) NewRecorder(name string, base http.RoundTripper) *leakcheck.Recorder {
	rec := leakcheck.NewRecorder(base)
	if s.ClientSecret != "" {
		rec.AddSecret(leakcheck.KindClientSecret, s.ClientSecret)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorders = append(s.recorders, namedRecorder{name: name, rec: rec})
	return rec
}

// CreateNamespace makes the namespace name with the credentials Secret
// (named SecretName, holding the suite's client ID and secret). envtest
// runs no namespace controller, so a deleted namespace never goes away: a
// name must not repeat within one test binary, or the next run of
// `go test -count=N` fails. Tests that do not build a unique name use
// NewNamespace.
func (s *Suite) CreateNamespace(t testing.TB, name string) {
	t.Helper()
	if err := s.Env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	s.CreateSecret(t, name, SecretName, s.ClientID, s.ClientSecret)
}

// NewNamespace makes a namespace with a generated name (prefix and a random
// suffix) and the credentials Secret, and returns the name.
func (s *Suite) NewNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := NewNamespace(t, s.Env.Client, prefix)
	s.CreateSecret(t, ns, SecretName, s.ClientID, s.ClientSecret)
	return ns
}

// NewNamespace makes a namespace named prefix, a dash and a random suffix
// (the API server's generateName), and returns the name. envtest runs no
// namespace controller, so a deleted namespace never goes away: a fixed
// name would fail the second run of `go test -count=N`.
func NewNamespace(t testing.TB, c client.Client, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("create a namespace %s-*: %v", prefix, err)
	}
	return ns.Name
}

// CreateSecret makes a credentials Secret.
func (s *Suite) CreateSecret(t testing.TB, ns, name, id, secret string) {
	t.Helper()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"clientId": id, "clientSecret": secret},
	}
	if err := s.Env.Client.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
}

// NewSource is a valid CapillarySource using the Secret CreateNamespace
// makes, with PointsMapping and EmailIdentityMapping; opts change it.
func NewSource(ns, name string, opts ...func(*v1alpha1.CapillarySource)) *v1alpha1.CapillarySource {
	cs := &v1alpha1.CapillarySource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.CapillarySourceSpec{
			CredentialsSecretRef: v1alpha1.CredentialsSecretReference{Name: SecretName},
			OrgID:                OrgID,
			Target:               v1alpha1.Target{DatasetID: DatasetID, SchemaID: SchemaID},
			Mappings:             []v1alpha1.Mapping{PointsMapping, EmailIdentityMapping},
		},
	}
	for _, o := range opts {
		o(cs)
	}
	return cs
}

// Mappings is a NewSource option replacing the mappings.
func Mappings(ms ...v1alpha1.Mapping) func(*v1alpha1.CapillarySource) {
	return func(cs *v1alpha1.CapillarySource) { cs.Spec.Mappings = ms }
}

// Create creates the resource.
func (s *Suite) Create(t testing.TB, cs *v1alpha1.CapillarySource) {
	t.Helper()
	if err := s.Env.Client.Create(context.Background(), cs); err != nil {
		t.Fatalf("create %s: %v", cs.Name, err)
	}
}

// Get reads the resource as the API server has it now.
func (s *Suite) Get(t testing.TB, cs *v1alpha1.CapillarySource) *v1alpha1.CapillarySource {
	t.Helper()
	got := &v1alpha1.CapillarySource{}
	if err := s.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(cs), got); err != nil {
		t.Fatalf("get %s: %v", cs.Name, err)
	}
	return got
}

// Update applies mutate to the current resource, again on a conflict.
func (s *Suite) Update(t testing.TB, cs *v1alpha1.CapillarySource, mutate func(*v1alpha1.CapillarySource)) {
	t.Helper()
	for range 10 {
		cur := s.Get(t, cs)
		mutate(cur)
		err := s.Env.Client.Update(context.Background(), cur)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("update %s: %v", cs.Name, err)
		}
	}
	t.Fatalf("update %s: kept conflicting", cs.Name)
}

// List returns the resources in the namespace.
func (s *Suite) List(t testing.TB, ns string) []v1alpha1.CapillarySource {
	t.Helper()
	var l v1alpha1.CapillarySourceList
	if err := s.Env.Client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatalf("list: %v", err)
	}
	return l.Items
}

func (s *Suite) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return defaultTimeout
}

// PollInterval is how often Poll, WaitUntil, WaitFor and WaitGone look.
const PollInterval = 100 * time.Millisecond

// Poll calls cond at once and then every PollInterval until it returns
// true or an error, for at most timeout (wait.PollUntilContextTimeout). It
// returns nil, cond's error, or the context's error when time ran out.
func Poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, PollInterval, timeout, true, cond)
}

// WaitUntil polls cond until it holds, or fails the test saying what it
// waited for. A cond that returns an error stops the wait and fails the test
// with that error.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	if err := Poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("waiting %s for %s: %v", timeout, what, err)
	}
}

// WaitFor polls the resource until cond holds, or fails the test with the
// last status it saw.
func (s *Suite) WaitFor(t testing.TB, cs *v1alpha1.CapillarySource, what string, cond func(*v1alpha1.CapillarySource) bool) *v1alpha1.CapillarySource {
	t.Helper()
	var last *v1alpha1.CapillarySource
	err := Poll(context.Background(), s.timeout(), func(ctx context.Context) (bool, error) {
		cur := &v1alpha1.CapillarySource{}
		if err := s.Env.Client.Get(ctx, client.ObjectKeyFromObject(cs), cur); err != nil {
			return false, nil // not there yet, or a blip: look again
		}
		last = cur
		return cond(cur), nil
	})
	if err != nil {
		status := "none read"
		if last != nil {
			status = fmt.Sprintf("%+v", last.Status)
		}
		t.Fatalf("%s/%s never became %s within %s; last status: %s", cs.Namespace, cs.Name, what, s.timeout(), status)
	}
	return last
}

// WaitGone waits until the resource no longer exists, or fails the test
// with its status.
func (s *Suite) WaitGone(t testing.TB, cs *v1alpha1.CapillarySource) {
	t.Helper()
	err := Poll(context.Background(), s.timeout(), func(ctx context.Context) (bool, error) {
		err := s.Env.Client.Get(ctx, client.ObjectKeyFromObject(cs), &v1alpha1.CapillarySource{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("%s/%s was never deleted; status: %+v", cs.Namespace, cs.Name, s.Get(t, cs).Status)
	}
}

// DeleteAndWait deletes the resource and waits until it is gone.
func (s *Suite) DeleteAndWait(t testing.TB, cs *v1alpha1.CapillarySource) {
	t.Helper()
	if err := s.Env.Client.Delete(context.Background(), cs); err != nil {
		t.Fatalf("delete %s: %v", cs.Name, err)
	}
	s.WaitGone(t, cs)
}

// IsReady: Ready for the current generation.
func IsReady(cs *v1alpha1.CapillarySource) bool {
	return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionReady) &&
		cs.Status.ObservedGeneration == cs.Generation
}

// ReasonIs holds when the condition has the reason.
func ReasonIs(condType, reason string) func(*v1alpha1.CapillarySource) bool {
	return func(cs *v1alpha1.CapillarySource) bool {
		c := meta.FindStatusCondition(cs.Status.Conditions, condType)
		return c != nil && c.Reason == reason
	}
}

// CRD reads the checked-in CapillarySource CRD from config/crd/bases, for
// tests that walk its schema.
func CRD(t testing.TB) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	return CRDOf(t, "capillarysources")
}

// CRDOf reads the checked-in CRD of a resource of the API group (its plural).
func CRDOf(t testing.TB, plural string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", v1alpha1.GroupVersion.Group+"_"+plural+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := sigsyaml.UnmarshalStrict(b, crd); err != nil {
		t.Fatal(err)
	}
	return crd
}
