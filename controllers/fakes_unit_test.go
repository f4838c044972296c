package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// IDs the fake Adobe hands out by default.
const (
	fakeBaseID     = "base-1"
	fakeSourceID   = "src-1"
	fakeTargetID   = "tgt-1"
	fakeMappingID  = "ms-1"
	fakeDataflowID = "flow-1"
	fakeInletURL   = "https://dcs.adobedc.net/collection/abc123"
	fakeProviderID = "521eee4d-8cbe-4906-bb48-fb6bd4450033"

	unitClientID     = "unit-client-id"
	unitClientSecret = "unit-secret-9a8b7c6d5e4f"
)

// fakeAdobe is a scriptable Adobe in crossplane-runtime's ExternalClientFns
// style: each method calls its Fn field when set, and otherwise answers as
// an Adobe holding exactly the happy-path objects of one CapillarySource.
// Every call is logged by method name, in order.
type fakeAdobe struct {
	// flowName and mappings are what the happy-path objects carry.
	flowName string
	mappings []flowservice.Mapping

	mu    sync.Mutex
	calls []string

	CheckCredentialsFn       func(ctx context.Context) error
	GetConnectionSpecFn      func(ctx context.Context, id string) (*flowservice.ConnectionSpec, error)
	FlowSpecForFn            func(ctx context.Context, connectionSpecID string) (*flowservice.FlowSpec, error)
	GetConnectionFn          func(ctx context.Context, id string) (*flowservice.Connection, error)
	FindConnectionFn         func(ctx context.Context, name string) (*flowservice.Connection, error)
	CreateConnectionFn       func(ctx context.Context, in flowservice.ConnectionInput) (string, error)
	PatchConnectionFn        func(ctx context.Context, id, etag string, ops []flowservice.PatchOp) error
	DeleteConnectionFn       func(ctx context.Context, id string) error
	FindSourceConnectionFn   func(ctx context.Context, name string) (*flowservice.SourceConnection, error)
	GetSourceConnectionFn    func(ctx context.Context, id string) (*flowservice.SourceConnection, error)
	CreateSourceConnectionFn func(ctx context.Context, in flowservice.SourceConnectionInput) (string, error)
	DeleteSourceConnectionFn func(ctx context.Context, id string) error
	FindTargetConnectionFn   func(ctx context.Context, name string) (*flowservice.TargetConnection, error)
	GetTargetConnectionFn    func(ctx context.Context, id string) (*flowservice.TargetConnection, error)
	CreateTargetConnectionFn func(ctx context.Context, in flowservice.TargetConnectionInput) (string, error)
	DeleteTargetConnectionFn func(ctx context.Context, id string) error
	GetMappingSetFn          func(ctx context.Context, id string) (*flowservice.MappingSet, error)
	CreateMappingSetFn       func(ctx context.Context, in flowservice.MappingSet) (flowservice.MappingSetRef, error)
	UpdateMappingSetFn       func(ctx context.Context, id string, in flowservice.MappingSet) (flowservice.MappingSetRef, error)
	FindFlowFn               func(ctx context.Context, name string) (*flowservice.Flow, error)
	GetFlowFn                func(ctx context.Context, id string) (*flowservice.Flow, error)
	CreateFlowFn             func(ctx context.Context, in flowservice.FlowInput) (string, error)
	PatchFlowFn              func(ctx context.Context, id, etag string, ops []flowservice.PatchOp) error
	FlowActionFn             func(ctx context.Context, id string, action flowservice.Action) error
	DeleteFlowFn             func(ctx context.Context, id string) error
	ListRunsFn               func(ctx context.Context, flowID string) ([]flowservice.Run, error)
}

var _ Adobe = (*fakeAdobe)(nil)

// newFakeAdobe answers for cs by default.
func newFakeAdobe(cs *v1alpha1.CapillarySource) *fakeAdobe {
	return &fakeAdobe{flowName: adobeName(cs, kindDataflow), mappings: mappingSetFor(cs).Mappings}
}

func (f *fakeAdobe) record(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
}

// Calls is the log of method names so far.
func (f *fakeAdobe) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// ResetCalls clears the log.
func (f *fakeAdobe) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// happyFlow is the dataflow of the happy path, enabled, bound to the
// default connections and mapping set.
func (f *fakeAdobe) happyFlow(id string) *flowservice.Flow {
	fl := &flowservice.Flow{
		ID:                  id,
		Name:                f.flowName,
		FlowSpec:            flowservice.SpecRef{ID: flowservice.StreamingFlowSpecID, Version: "1.0"},
		State:               flowservice.StateEnabled,
		ETag:                `"etag-1"`,
		SourceConnectionIDs: []string{fakeSourceID},
		TargetConnectionIDs: []string{fakeTargetID},
		Options:             flowservice.FlowOptions{InletURL: fakeInletURL},
	}
	if len(f.mappings) > 0 {
		fl.Transformations = []flowservice.Transformation{{
			Name:   flowservice.TransformationMapping,
			Params: flowservice.TransformationParams{MappingID: fakeMappingID, MappingVersion: 1},
		}}
	}
	return fl
}

func (f *fakeAdobe) CheckCredentials(ctx context.Context) error {
	f.record("CheckCredentials")
	if f.CheckCredentialsFn != nil {
		return f.CheckCredentialsFn(ctx)
	}
	return nil
}

func (f *fakeAdobe) GetConnectionSpec(ctx context.Context, id string) (*flowservice.ConnectionSpec, error) {
	f.record("GetConnectionSpec")
	if f.GetConnectionSpecFn != nil {
		return f.GetConnectionSpecFn(ctx, id)
	}
	return &flowservice.ConnectionSpec{
		ID: id, Name: "capillary-streaming", ProviderID: fakeProviderID, Version: "1.0",
		Attributes: flowservice.ConnectionSpecAttributes{IsSource: true},
	}, nil
}

func (f *fakeAdobe) FlowSpecFor(ctx context.Context, connectionSpecID string) (*flowservice.FlowSpec, error) {
	f.record("FlowSpecFor")
	if f.FlowSpecForFn != nil {
		return f.FlowSpecForFn(ctx, connectionSpecID)
	}
	return &flowservice.FlowSpec{
		ID: flowservice.StreamingFlowSpecID, Name: "GenericStreamingAEP", Version: "1.0",
		SourceConnectionSpecIDs: []string{connectionSpecID},
		TargetConnectionSpecIDs: []string{flowservice.DataLakeConnectionSpecID},
	}, nil
}

func (f *fakeAdobe) GetConnection(ctx context.Context, id string) (*flowservice.Connection, error) {
	f.record("GetConnection")
	if f.GetConnectionFn != nil {
		return f.GetConnectionFn(ctx, id)
	}
	return &flowservice.Connection{ID: id, ETag: `"base-etag-1"`}, nil
}

func (f *fakeAdobe) FindConnection(ctx context.Context, name string) (*flowservice.Connection, error) {
	f.record("FindConnection")
	if f.FindConnectionFn != nil {
		return f.FindConnectionFn(ctx, name)
	}
	return nil, nil
}

func (f *fakeAdobe) CreateConnection(ctx context.Context, in flowservice.ConnectionInput) (flowservice.Ref, error) {
	f.record("CreateConnection")
	if f.CreateConnectionFn != nil {
		id, err := f.CreateConnectionFn(ctx, in)
		return flowservice.Ref{ID: id}, err
	}
	return flowservice.Ref{ID: fakeBaseID}, nil
}

func (f *fakeAdobe) PatchConnection(ctx context.Context, id, etag string, ops []flowservice.PatchOp) (flowservice.Ref, error) {
	f.record("PatchConnection")
	if f.PatchConnectionFn != nil {
		return flowservice.Ref{}, f.PatchConnectionFn(ctx, id, etag, ops)
	}
	return flowservice.Ref{}, nil
}

func (f *fakeAdobe) DeleteConnection(ctx context.Context, id string) error {
	f.record("DeleteConnection")
	if f.DeleteConnectionFn != nil {
		return f.DeleteConnectionFn(ctx, id)
	}
	return nil
}

func (f *fakeAdobe) FindSourceConnection(ctx context.Context, name string) (*flowservice.SourceConnection, error) {
	f.record("FindSourceConnection")
	if f.FindSourceConnectionFn != nil {
		return f.FindSourceConnectionFn(ctx, name)
	}
	return nil, nil
}

func (f *fakeAdobe) GetSourceConnection(ctx context.Context, id string) (*flowservice.SourceConnection, error) {
	f.record("GetSourceConnection")
	if f.GetSourceConnectionFn != nil {
		return f.GetSourceConnectionFn(ctx, id)
	}
	return &flowservice.SourceConnection{ID: id, ConnectionSpec: flowservice.SpecRef{ID: v1alpha1.DefaultConnectionSpecID, Version: "1.0"}}, nil
}

func (f *fakeAdobe) CreateSourceConnection(ctx context.Context, in flowservice.SourceConnectionInput) (flowservice.Ref, error) {
	f.record("CreateSourceConnection")
	if f.CreateSourceConnectionFn != nil {
		id, err := f.CreateSourceConnectionFn(ctx, in)
		return flowservice.Ref{ID: id}, err
	}
	return flowservice.Ref{ID: fakeSourceID}, nil
}

func (f *fakeAdobe) DeleteSourceConnection(ctx context.Context, id string) error {
	f.record("DeleteSourceConnection")
	if f.DeleteSourceConnectionFn != nil {
		return f.DeleteSourceConnectionFn(ctx, id)
	}
	return nil
}

func (f *fakeAdobe) FindTargetConnection(ctx context.Context, name string) (*flowservice.TargetConnection, error) {
	f.record("FindTargetConnection")
	if f.FindTargetConnectionFn != nil {
		return f.FindTargetConnectionFn(ctx, name)
	}
	return nil, nil
}

func (f *fakeAdobe) GetTargetConnection(ctx context.Context, id string) (*flowservice.TargetConnection, error) {
	f.record("GetTargetConnection")
	if f.GetTargetConnectionFn != nil {
		return f.GetTargetConnectionFn(ctx, id)
	}
	return &flowservice.TargetConnection{ID: id, ConnectionSpec: flowservice.SpecRef{ID: flowservice.DataLakeConnectionSpecID, Version: "1.0"}}, nil
}

func (f *fakeAdobe) CreateTargetConnection(ctx context.Context, in flowservice.TargetConnectionInput) (flowservice.Ref, error) {
	f.record("CreateTargetConnection")
	if f.CreateTargetConnectionFn != nil {
		id, err := f.CreateTargetConnectionFn(ctx, in)
		return flowservice.Ref{ID: id}, err
	}
	return flowservice.Ref{ID: fakeTargetID}, nil
}

func (f *fakeAdobe) DeleteTargetConnection(ctx context.Context, id string) error {
	f.record("DeleteTargetConnection")
	if f.DeleteTargetConnectionFn != nil {
		return f.DeleteTargetConnectionFn(ctx, id)
	}
	return nil
}

func (f *fakeAdobe) GetMappingSet(ctx context.Context, id string) (*flowservice.MappingSet, error) {
	f.record("GetMappingSet")
	if f.GetMappingSetFn != nil {
		return f.GetMappingSetFn(ctx, id)
	}
	return &flowservice.MappingSet{ID: id, Version: 1, Mappings: f.mappings}, nil
}

func (f *fakeAdobe) CreateMappingSet(ctx context.Context, in flowservice.MappingSet) (flowservice.MappingSetRef, error) {
	f.record("CreateMappingSet")
	if f.CreateMappingSetFn != nil {
		return f.CreateMappingSetFn(ctx, in)
	}
	return flowservice.MappingSetRef{ID: fakeMappingID, Version: 1}, nil
}

func (f *fakeAdobe) UpdateMappingSet(ctx context.Context, id string, in flowservice.MappingSet) (*flowservice.MappingSet, error) {
	f.record("UpdateMappingSet")
	ref := flowservice.MappingSetRef{ID: id, Version: 2}
	if f.UpdateMappingSetFn != nil {
		var err error
		if ref, err = f.UpdateMappingSetFn(ctx, id, in); err != nil {
			return nil, err
		}
	}
	in.ID, in.Version = ref.ID, ref.Version
	return &in, nil
}

func (f *fakeAdobe) FindFlow(ctx context.Context, name string) (*flowservice.Flow, error) {
	f.record("FindFlow")
	if f.FindFlowFn != nil {
		return f.FindFlowFn(ctx, name)
	}
	return nil, nil
}

func (f *fakeAdobe) GetFlow(ctx context.Context, id string) (*flowservice.Flow, error) {
	f.record("GetFlow")
	if f.GetFlowFn != nil {
		return f.GetFlowFn(ctx, id)
	}
	return f.happyFlow(id), nil
}

func (f *fakeAdobe) CreateFlow(ctx context.Context, in flowservice.FlowInput) (flowservice.Ref, error) {
	f.record("CreateFlow")
	if f.CreateFlowFn != nil {
		id, err := f.CreateFlowFn(ctx, in)
		return flowservice.Ref{ID: id}, err
	}
	return flowservice.Ref{ID: fakeDataflowID}, nil
}

func (f *fakeAdobe) PatchFlow(ctx context.Context, id, etag string, ops []flowservice.PatchOp) (flowservice.Ref, error) {
	f.record("PatchFlow")
	if f.PatchFlowFn != nil {
		return flowservice.Ref{}, f.PatchFlowFn(ctx, id, etag, ops)
	}
	return flowservice.Ref{}, nil
}

func (f *fakeAdobe) FlowAction(ctx context.Context, id string, action flowservice.Action) (flowservice.Ref, error) {
	f.record("FlowAction")
	if f.FlowActionFn != nil {
		return flowservice.Ref{}, f.FlowActionFn(ctx, id, action)
	}
	return flowservice.Ref{}, nil
}

func (f *fakeAdobe) DeleteFlow(ctx context.Context, id string) error {
	f.record("DeleteFlow")
	if f.DeleteFlowFn != nil {
		return f.DeleteFlowFn(ctx, id)
	}
	return nil
}

func (f *fakeAdobe) ListRuns(ctx context.Context, flowID string) ([]flowservice.Run, error) {
	f.record("ListRuns")
	if f.ListRunsFn != nil {
		return f.ListRunsFn(ctx, flowID)
	}
	return nil, nil
}

// fakeConnector hands out one fakeAdobe (or what ConnectFn returns) and
// remembers the credentials it was asked to bind.
type fakeConnector struct {
	Adobe     Adobe
	ConnectFn func(creds Credentials) Adobe

	mu    sync.Mutex
	creds []Credentials
}

var _ AdobeConnector = (*fakeConnector)(nil)

func (c *fakeConnector) Connect(creds Credentials) Adobe {
	c.mu.Lock()
	c.creds = append(c.creds, creds)
	c.mu.Unlock()
	if c.ConnectFn != nil {
		return c.ConnectFn(creds)
	}
	return c.Adobe
}

// Connects is the credentials of every Connect so far.
func (c *fakeConnector) Connects() []Credentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Credentials(nil), c.creds...)
}

// Errors in the shapes the clients return them.
func adobeErr(status int, code string) *flowservice.Error {
	return &flowservice.Error{StatusCode: status, Code: code, Title: "test", RequestID: "req-1"}
}

func notFound() error { return adobeErr(404, "FLOW-1107-404") }

// unitNow is the fixed clock the tests start at, whole seconds so that
// times survive the JSON round trip of the fake client unchanged.
var unitNow = time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)

// Timings of the reconciler under test (the defaults of the flags).
const (
	unitResync  = 10 * time.Minute
	unitStalled = 15 * time.Minute
	unitBase    = 2 * time.Second
	unitMax     = 5 * time.Minute
)

// unitSource is a CapillarySource as the API server would hold it after
// create: defaults applied, generation 1, observedGeneration -1.
func unitSource(mutate ...func(*v1alpha1.CapillarySource)) *v1alpha1.CapillarySource {
	cs := &v1alpha1.CapillarySource{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         "team-a",
			Name:              "loyalty",
			UID:               "3f0c5a9e-8d1b-4a57-9c2e-6b7d8e9f0a1b",
			Generation:        1,
			CreationTimestamp: metav1.NewTime(unitNow.Add(-time.Hour)),
		},
		Spec: v1alpha1.CapillarySourceSpec{
			CredentialsSecretRef: v1alpha1.CredentialsSecretReference{Name: "adobe", ClientIDKey: "clientId", ClientSecretKey: "clientSecret"},
			OrgID:                "0A7D42FC5DB9D3360A495FD3@AdobeOrg",
			SandboxName:          "prod",
			ConnectionSpecID:     v1alpha1.DefaultConnectionSpecID,
			Target: v1alpha1.Target{
				DatasetID:     "6889f4f89b982b2b90bc1207",
				SchemaID:      "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168",
				SchemaVersion: "application/vnd.adobe.xed-full+json;version=1",
			},
			Mappings: []v1alpha1.Mapping{
				{SourceAttribute: "loyalty.points", DestinationXdmPath: "loyalty.points"},
				{SourceAttribute: "identityMap.email.id", DestinationXdmPath: "identityMap.email[0].id", Identity: true},
			},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete,
		},
		Status: v1alpha1.CapillarySourceStatus{ObservedGeneration: -1},
	}
	for _, m := range mutate {
		m(cs)
	}
	return cs
}

func unitSecret(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "adobe"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func goodSecret() *corev1.Secret {
	return unitSecret(map[string]string{"clientId": unitClientID, "clientSecret": unitClientSecret})
}

// unitScheme is manager.Scheme(), rebuilt: internal/manager imports this
// package, so its tests cannot import it back.
func unitScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// harness is one reconciler on a fake API server with a fake Adobe.
type harness struct {
	t      *testing.T
	c      client.WithWatch
	r      *CapillarySourceReconciler
	adobe  *fakeAdobe
	conn   *fakeConnector
	rec    *events.FakeRecorder
	key    types.NamespacedName
	now    time.Time
	events []string // "Type/Reason" of every event so far
	// eventNotes are the events as recorded ("Type Reason note").
	eventNotes []string
}

// newHarness stores cs and objs (the Secret, usually) in a fake API server.
func newHarness(t *testing.T, cs *v1alpha1.CapillarySource, objs ...client.Object) *harness {
	t.Helper()
	return newHarnessIntercepted(t, interceptor.Funcs{}, cs, objs...)
}

// newHarnessIntercepted is newHarness with API server calls passed through funcs.
func newHarnessIntercepted(t *testing.T, funcs interceptor.Funcs, cs *v1alpha1.CapillarySource, objs ...client.Object) *harness {
	t.Helper()
	c := fake.NewClientBuilder().
		WithScheme(unitScheme(t)).
		WithStatusSubresource(&v1alpha1.CapillarySource{}).
		WithObjects(append([]client.Object{cs.DeepCopy()}, objs...)...).
		WithInterceptorFuncs(funcs).
		Build()
	h := &harness{
		t:     t,
		c:     c,
		adobe: newFakeAdobe(cs),
		rec:   events.NewFakeRecorder(100),
		key:   client.ObjectKeyFromObject(cs),
		now:   unitNow,
	}
	h.conn = &fakeConnector{Adobe: h.adobe}
	h.r = &CapillarySourceReconciler{
		Client:               c,
		APIReader:            c,
		Recorder:             h.rec,
		Adobe:                h.conn,
		ResyncInterval:       unitResync,
		StalledRetryInterval: unitStalled,
		RetryBaseDelay:       unitBase,
		RetryMaxDelay:        unitMax,
		Now:                  func() time.Time { return h.now },
	}
	return h
}

// reconcile runs one Reconcile, which must not fail, and checks that no
// credential leaked into status or events.
func (h *harness) reconcile() ctrl.Result {
	h.t.Helper()
	res, err := h.r.Reconcile(h.t.Context(), ctrl.Request{NamespacedName: h.key})
	if err != nil {
		h.t.Fatalf("Reconcile: %v", err)
	}
drain:
	for {
		select {
		case e := <-h.rec.Events:
			if strings.Contains(e, unitClientSecret) {
				h.t.Errorf("event holds the client secret: %q", e)
			}
			if f := strings.Fields(e); len(f) >= 2 {
				h.events = append(h.events, f[0]+"/"+f[1])
				h.eventNotes = append(h.eventNotes, e)
			}
		default:
			break drain
		}
	}
	if cs, ok := h.tryGet(); ok {
		b, _ := json.Marshal(cs.Status)
		if strings.Contains(string(b), unitClientSecret) {
			h.t.Errorf("status holds the client secret: %s", b)
		}
	}
	return res
}

// settle runs the happy path to Ready, then clears the call and event logs.
func (h *harness) settle() *v1alpha1.CapillarySource {
	h.t.Helper()
	h.reconcile()
	cs := h.get()
	if cs.Status.DataflowID == "" || cs.Status.ObservedGeneration != cs.Generation {
		h.t.Fatalf("settle: not Ready: %+v", cs.Status)
	}
	h.adobe.ResetCalls()
	h.events = nil
	h.eventNotes = nil
	return cs
}

func (h *harness) tryGet() (*v1alpha1.CapillarySource, bool) {
	cs := &v1alpha1.CapillarySource{}
	if err := h.c.Get(h.t.Context(), h.key, cs); err != nil {
		return nil, false
	}
	return cs, true
}

func (h *harness) get() *v1alpha1.CapillarySource {
	h.t.Helper()
	cs, ok := h.tryGet()
	if !ok {
		h.t.Fatalf("get %s: gone", h.key)
	}
	return cs
}

// edit changes the stored resource as a user would. The fake API server
// does not bump generation, so a spec change must set it.
func (h *harness) edit(mutate func(*v1alpha1.CapillarySource)) {
	h.t.Helper()
	cs := h.get()
	mutate(cs)
	if err := h.c.Update(h.t.Context(), cs); err != nil {
		h.t.Fatalf("update: %v", err)
	}
}
