package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

// cond is what the tests assert of a condition: never its message.
type cond struct {
	Status metav1.ConditionStatus
	Reason string
}

func conds(cs *v1alpha1.CapillarySource) map[string]cond {
	out := map[string]cond{}
	for _, c := range cs.Status.Conditions {
		out[c.Type] = cond{c.Status, c.Reason}
	}
	return out
}

var (
	isTrue  = func(reason string) cond { return cond{metav1.ConditionTrue, reason} }
	isFalse = func(reason string) cond { return cond{metav1.ConditionFalse, reason} }
)

// readyConds are the conditions of a Ready resource with mappings.
func readyConds(readyReason string) map[string]cond {
	ingestion := cond{metav1.ConditionUnknown, v1alpha1.ReasonNoRunsYet}
	if readyReason == v1alpha1.ReasonSuspended {
		ingestion.Reason = v1alpha1.ReasonSuspended
	}
	return map[string]cond{
		v1alpha1.ConditionIngestionHealthy:      ingestion,
		v1alpha1.ConditionCredentialsReady:      isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionSourceConnectionReady: isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionTargetConnectionReady: isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionMappingReady:          isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionDataflowReady:         isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionReady:                 isTrue(readyReason),
	}
}

// checkConds compares the conditions with want, exactly: a type missing from
// want must be absent. Every condition must speak of the current generation.
func checkConds(t *testing.T, cs *v1alpha1.CapillarySource, want map[string]cond) {
	t.Helper()
	if diff := cmp.Diff(want, conds(cs)); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
	for _, c := range cs.Status.Conditions {
		if c.ObservedGeneration != cs.Generation {
			t.Errorf("condition %s has observedGeneration %d, generation is %d", c.Type, c.ObservedGeneration, cs.Generation)
		}
	}
}

// checkConditionsOf compares only the listed condition types; absent in
// want (zero cond) means the condition must not be there.
func checkConditionsOf(t *testing.T, cs *v1alpha1.CapillarySource, want map[string]cond) {
	t.Helper()
	got := conds(cs)
	for typ, w := range want {
		if g := got[typ]; g != w {
			t.Errorf("condition %s = %+v, want %+v", typ, g, w)
		}
	}
}

func within(t *testing.T, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s = %v, want within [%v, %v]", what, got, lo, hi)
	}
}

// checkCalls compares the Adobe calls with want, in order. Calls of the
// kinds below are compared exactly; a call of any other kind (a step added
// later) is compared only by the cases that list calls of its kind, so a new
// step does not change the expectations of cases that are not about it.
func checkCalls(t *testing.T, a *fakeAdobe, want []string) {
	t.Helper()
	listed := map[string]bool{}
	for _, c := range want {
		listed[callKind(c)] = true
	}
	var got []string
	for _, c := range a.Calls() {
		if k := callKind(c); comparedKinds[k] || listed[k] {
			got = append(got, c)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Adobe calls (-want +got):\n%s", diff)
	}
}

// comparedKinds are the kinds of call every case compares exactly.
var comparedKinds = map[string]bool{"credentials": true, "specs": true, "source": true, "target": true, "mapping": true, "dataflow": true}

// callKind is the kind of Adobe object a fake method acts on, by its name.
func callKind(method string) string {
	for _, k := range []struct{ suffix, kind string }{
		{"Credentials", "credentials"}, {"ConnectionSpec", "specs"}, {"FlowSpecFor", "specs"},
		{"SourceConnection", "source"}, {"TargetConnection", "target"}, {"MappingSet", "mapping"},
		{"Flow", "dataflow"}, {"FlowAction", "dataflow"},
	} {
		if strings.HasSuffix(method, k.suffix) {
			return k.kind
		}
	}
	return method
}

func warnings(evs []string) []string {
	var out []string
	for _, e := range evs {
		if strings.HasPrefix(e, "Warning/") {
			out = append(out, e)
		}
	}
	return out
}

func checkEvents(t *testing.T, h *harness, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, h.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// Resync bounds: the interval ±10%.
func resyncBounds(d time.Duration) (time.Duration, time.Duration) {
	return time.Duration(float64(d) * 0.9), time.Duration(float64(d) * 1.1)
}

func stalledBounds() [2]time.Duration {
	lo, hi := resyncBounds(unitStalled)
	return [2]time.Duration{lo, hi}
}

// retryBounds is the requeue window after n failures in a row: the
// documented schedule (2s doubling per failure, capped at 5m, unitBase and
// unitMax) ±20% jitter, written out rather than computed like the code.
func retryBounds(n int) (time.Duration, time.Duration) {
	backoff := map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 41: unitMax}[n]
	if backoff == 0 {
		panic(fmt.Sprintf("retryBounds: no schedule entry for %d failures", n))
	}
	return time.Duration(float64(backoff) * 0.8), time.Duration(float64(backoff) * 1.2)
}

func TestUnitReconcileFirstPass(t *testing.T) {
	cases := map[string]struct {
		mutate     func(*v1alpha1.CapillarySource)
		wantCalls  []string
		wantConds  map[string]cond
		wantMapID  string
		wantState  string
		wantEvents []string
	}{
		"with mappings": {
			wantCalls: []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor",
				"CreateSourceConnection", "CreateTargetConnection", "CreateMappingSet", "CreateFlow", "GetFlow"},
			wantConds:  readyConds(v1alpha1.ReasonSucceeded),
			wantMapID:  fakeMappingID,
			wantState:  flowservice.StateEnabled,
			wantEvents: []string{"Normal/Created"}, // one event names all four objects
		},
		"without mappings": {
			mutate: func(cs *v1alpha1.CapillarySource) { cs.Spec.Mappings = nil },
			wantCalls: []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor",
				"CreateSourceConnection", "CreateTargetConnection", "CreateFlow", "GetFlow"},
			wantConds: func() map[string]cond {
				c := readyConds(v1alpha1.ReasonSucceeded)
				c[v1alpha1.ConditionMappingReady] = isTrue(v1alpha1.ReasonNotApplicable)
				return c
			}(),
			wantState:  flowservice.StateEnabled,
			wantEvents: []string{"Normal/Created"},
		},
		"suspended from the start": {
			mutate: func(cs *v1alpha1.CapillarySource) { cs.Spec.Suspend = true },
			wantCalls: []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor",
				"CreateSourceConnection", "CreateTargetConnection", "CreateMappingSet", "CreateFlow", "GetFlow", "FlowAction"},
			wantConds:  readyConds(v1alpha1.ReasonSuspended),
			wantMapID:  fakeMappingID,
			wantState:  flowservice.StateDisabled,
			wantEvents: []string{"Normal/Suspended", "Normal/Created"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := unitSource()
			if tc.mutate != nil {
				tc.mutate(src)
			}
			h := newHarness(t, src, goodSecret())
			var (
				srcIn  flowservice.SourceConnectionInput
				tgtIn  flowservice.TargetConnectionInput
				flowIn flowservice.FlowInput
			)
			h.adobe.CreateSourceConnectionFn = func(_ context.Context, in flowservice.SourceConnectionInput) (string, error) {
				srcIn = in
				return fakeSourceID, nil
			}
			h.adobe.CreateTargetConnectionFn = func(_ context.Context, in flowservice.TargetConnectionInput) (string, error) {
				tgtIn = in
				return fakeTargetID, nil
			}
			h.adobe.CreateFlowFn = func(_ context.Context, in flowservice.FlowInput) (string, error) {
				flowIn = in
				return fakeDataflowID, nil
			}

			res := h.reconcile()
			got := h.get()

			if !controllerutil.ContainsFinalizer(got, v1alpha1.Finalizer) {
				t.Error("finalizer not added")
			}
			checkCalls(t, h.adobe, tc.wantCalls)
			checkConds(t, got, tc.wantConds)
			checkEvents(t, h, tc.wantEvents)
			if got.Status.ObservedGeneration != got.Generation {
				t.Errorf("observedGeneration = %d, want %d", got.Status.ObservedGeneration, got.Generation)
			}
			wantStatus := v1alpha1.CapillarySourceStatus{
				ObservedGeneration:  1,
				SourceConnectionID:  fakeSourceID,
				TargetConnectionID:  fakeTargetID,
				MappingSetID:        tc.wantMapID,
				DataflowID:          fakeDataflowID,
				FlowSpecID:          flowservice.StreamingFlowSpecID,
				InletURL:            fakeInletURL,
				DataflowState:       tc.wantState,
				LastSyncTime:        &metav1.Time{Time: unitNow},
				CreateStartedAt:     &metav1.Time{Time: unitNow},
				InletAuthentication: v1alpha1.InletAuthenticationNone,
				InletReadyAt:        &metav1.Time{Time: unitNow},
			}
			if tc.wantMapID != "" {
				wantStatus.MappingSetVersion = 1
			}
			gotStatus := got.Status
			gotStatus.Conditions = nil
			if diff := cmp.Diff(wantStatus, gotStatus); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			lo, hi := resyncBounds(unitResync)
			within(t, "RequeueAfter", res.RequeueAfter, lo, hi)

			// What was sent: deterministic names, the credential of the Secret.
			wantCreds := []Credentials{{ClientID: unitClientID, ClientSecret: unitClientSecret, OrgID: src.Spec.OrgID, SandboxName: "prod"}}
			if diff := cmp.Diff(wantCreds, h.conn.Connects()); diff != "" {
				t.Errorf("Connect credentials (-want +got):\n%s", diff)
			}
			if srcIn.Name != adobeName(src, kindSource) || srcIn.ConnectionSpec.ID != src.Spec.ConnectionSpecID || srcIn.ProviderID != fakeProviderID {
				t.Errorf("source connection input = %+v", srcIn)
			}
			if tgtIn.Name != adobeName(src, kindTarget) || tgtIn.Params.DataSetID != src.Spec.Target.DatasetID ||
				tgtIn.Data.Schema == nil || tgtIn.Data.Schema.ID != src.Spec.Target.SchemaID ||
				tgtIn.ConnectionSpec.ID != flowservice.DataLakeConnectionSpecID {
				t.Errorf("target connection input = %+v", tgtIn)
			}
			wantFlow := flowservice.FlowInput{
				Name:                adobeName(src, kindDataflow),
				Description:         description(src),
				FlowSpec:            flowservice.SpecRef{ID: flowservice.StreamingFlowSpecID, Version: "1.0"},
				SourceConnectionIDs: []string{fakeSourceID},
				TargetConnectionIDs: []string{fakeTargetID},
			}
			if tc.wantMapID != "" {
				wantFlow.Transformations = []flowservice.Transformation{{Name: flowservice.TransformationMapping,
					Params: flowservice.TransformationParams{MappingID: fakeMappingID, MappingVersion: 1}}}
			}
			if diff := cmp.Diff(wantFlow, flowIn); diff != "" {
				t.Errorf("flow input (-want +got):\n%s", diff)
			}
		})
	}
}

// A pass after the first (status has conditions) may follow a lost create
// response or a crash before the status write: each missing object is looked
// up by its name first, and what is found is adopted, not created again.
func TestUnitReconcileLaterPassLooksUpByName(t *testing.T) {
	const (
		foundSource = "src-found"
		foundTarget = "tgt-found"
		foundFlow   = "flow-found"
	)
	cases := map[string]struct {
		sourceFound, targetFound, flowFound bool
		wantCalls                           []string
		wantIDs                             [3]string // source, target, dataflow
		wantCreated                         int
	}{
		"all found": {
			sourceFound: true, targetFound: true, flowFound: true,
			wantCalls: []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor",
				"FindSourceConnection", "FindTargetConnection", "GetMappingSet", "FindFlow"},
			wantIDs: [3]string{foundSource, foundTarget, foundFlow},
		},
		"source found, the rest created": {
			sourceFound: true,
			wantCalls: []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor",
				"FindSourceConnection", "FindTargetConnection", "CreateTargetConnection", "GetMappingSet",
				"FindFlow", "CreateFlow", "GetFlow"},
			wantIDs:     [3]string{foundSource, fakeTargetID, fakeDataflowID},
			wantCreated: 2,
		},
		"nothing found": {
			wantCalls: []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor",
				"FindSourceConnection", "CreateSourceConnection", "FindTargetConnection", "CreateTargetConnection",
				"GetMappingSet", "FindFlow", "CreateFlow", "GetFlow"},
			wantIDs:     [3]string{fakeSourceID, fakeTargetID, fakeDataflowID},
			wantCreated: 3,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// A pass that created the mapping set, then lost everything else.
			src := unitSource(func(cs *v1alpha1.CapillarySource) {
				cs.Finalizers = []string{v1alpha1.Finalizer}
				cs.Status.MappingSetID = fakeMappingID
				cs.Status.MappingSetVersion = 1
				cs.Status.Conditions = []metav1.Condition{
					{Type: v1alpha1.ConditionCredentialsReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow)},
					{Type: v1alpha1.ConditionSourceConnectionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonProgressing, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow)},
					{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonProgressing, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow)},
					{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonProgressing, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow)},
				}
			})
			h := newHarness(t, src, goodSecret())
			a := h.adobe
			a.FindSourceConnectionFn = func(_ context.Context, name string) (*flowservice.SourceConnection, error) {
				if name != adobeName(src, kindSource) {
					t.Errorf("source looked up as %q", name)
				}
				if !tc.sourceFound {
					return nil, nil
				}
				return &flowservice.SourceConnection{ID: foundSource, Name: name}, nil
			}
			a.FindTargetConnectionFn = func(_ context.Context, name string) (*flowservice.TargetConnection, error) {
				if name != adobeName(src, kindTarget) {
					t.Errorf("target looked up as %q", name)
				}
				if !tc.targetFound {
					return nil, nil
				}
				return &flowservice.TargetConnection{ID: foundTarget, Name: name}, nil
			}
			a.FindFlowFn = func(_ context.Context, name string) (*flowservice.Flow, error) {
				if name != adobeName(src, kindDataflow) {
					t.Errorf("dataflow looked up as %q", name)
				}
				if !tc.flowFound {
					return nil, nil
				}
				f := a.happyFlow(foundFlow)
				f.SourceConnectionIDs, f.TargetConnectionIDs = []string{foundSource}, []string{foundTarget}
				return f, nil
			}
			a.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
				f := a.happyFlow(id)
				f.SourceConnectionIDs = []string{tc.wantIDs[0]}
				return f, nil
			}

			h.reconcile()
			got := h.get()
			checkCalls(t, a, tc.wantCalls)
			checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
			gotIDs := [3]string{got.Status.SourceConnectionID, got.Status.TargetConnectionID, got.Status.DataflowID}
			if gotIDs != tc.wantIDs {
				t.Errorf("IDs = %v, want %v", gotIDs, tc.wantIDs)
			}
			// One Created event names every object the pass created.
			created := 0
			for _, e := range h.eventNotes {
				if strings.HasPrefix(e, "Normal Created ") {
					created += strings.Count(e, ",") + 1
				}
			}
			if created != tc.wantCreated {
				t.Errorf("%d objects named in Created events, want %d (%v)", created, tc.wantCreated, h.eventNotes)
			}
		})
	}
}

// A resync of a Ready resource reads the dataflow and nothing else.
func TestUnitReconcileResyncReadsOnlyTheDataflow(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	before := h.settle()

	h.now = h.now.Add(unitResync)
	res := h.reconcile()
	after := h.get()

	checkCalls(t, h.adobe, []string{"CheckCredentials", "GetFlow"})
	checkEvents(t, h, nil)
	lo, hi := resyncBounds(unitResync)
	within(t, "RequeueAfter", res.RequeueAfter, lo, hi)
	// Conditions are identical, timestamps included: nothing flaps.
	if diff := cmp.Diff(before.Status.Conditions, after.Status.Conditions); diff != "" {
		t.Errorf("conditions changed on a resync (-before +after):\n%s", diff)
	}
	// A resync that finds everything as declared writes nothing at all.
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a resync wrote the resource: resourceVersion %s → %s", before.ResourceVersion, after.ResourceVersion)
	}
	if diff := cmp.Diff(before.Status, after.Status); diff != "" {
		t.Errorf("status changed on a resync (-before +after):\n%s", diff)
	}
	h.adobe.ResetCalls()
	h.reconcile()
	checkCalls(t, h.adobe, []string{"CheckCredentials", "GetFlow"})
}

// The dataflow deleted out of band: the resync re-checks the connections and
// recreates the flow.
func TestUnitReconcileResyncRecreatesDeletedFlow(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	h.settle()
	a := h.adobe
	a.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
		if id == fakeDataflowID {
			return nil, notFound()
		}
		return a.happyFlow(id), nil
	}
	a.CreateFlowFn = func(context.Context, flowservice.FlowInput) (string, error) { return "flow-2", nil }

	h.now = h.now.Add(unitResync)
	res := h.reconcile()
	got := h.get()

	checkCalls(t, a, []string{"CheckCredentials", "GetFlow",
		"GetSourceConnection", "GetTargetConnection", "GetMappingSet",
		"GetFlow", "FindFlow", "CreateFlow", "GetFlow"})
	checkEvents(t, h, []string{"Warning/DataflowGone", "Normal/Created"})
	checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
	if got.Status.DataflowID != "flow-2" || got.Status.InletURL != fakeInletURL {
		t.Errorf("dataflowId = %q, inletUrl = %q; want flow-2 and the inlet", got.Status.DataflowID, got.Status.InletURL)
	}
	lo, hi := resyncBounds(unitResync)
	within(t, "RequeueAfter", res.RequeueAfter, lo, hi)
}

// spec.suspend drives the dataflow's state with the action API.
func TestUnitReconcileSuspendAndResume(t *testing.T) {
	cases := map[string]struct {
		suspend     bool
		adobeState  string
		actionErr   error
		stateAfter  string // what a re-read after a failed action finds
		readErr     error  // what that re-read fails with, if it does
		wantAction  flowservice.Action
		wantCalls   []string
		wantReady   string
		wantState   string
		wantEvents  []string
		wantFailure bool
	}{
		"suspend an enabled flow": {
			suspend: true, adobeState: flowservice.StateEnabled,
			wantAction: flowservice.ActionDisable,
			wantCalls:  []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow", "FlowAction"},
			wantReady:  v1alpha1.ReasonSuspended, wantState: flowservice.StateDisabled,
			wantEvents: []string{"Normal/Suspended"},
		},
		"resume a disabled flow": {
			suspend: false, adobeState: flowservice.StateDisabled,
			wantAction: flowservice.ActionEnable,
			wantCalls:  []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow", "FlowAction"},
			wantReady:  v1alpha1.ReasonSucceeded, wantState: flowservice.StateEnabled,
			wantEvents: []string{"Normal/Resumed"},
		},
		"already suspended: no action": {
			suspend: true, adobeState: flowservice.StateDisabled,
			wantCalls: []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow"},
			wantReady: v1alpha1.ReasonSuspended, wantState: flowservice.StateDisabled,
		},
		"action refused because a lost first answer already applied it": {
			suspend: true, adobeState: flowservice.StateEnabled,
			actionErr: adobeErr(400, "FLOW-1422-400"), stateAfter: flowservice.StateDisabled,
			wantAction: flowservice.ActionDisable,
			wantCalls:  []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow", "FlowAction", "GetFlow"},
			wantReady:  v1alpha1.ReasonSuspended, wantState: flowservice.StateDisabled,
			wantEvents: []string{"Normal/Suspended"},
		},
		// Seen in the soak (issue 16): the re-read after FLOW-1422-400 met a
		// fault; the action's 400 must not make it terminal.
		"action refused as already applied, and the re-read fails": {
			suspend: true, adobeState: flowservice.StateEnabled,
			actionErr: adobeErr(400, "FLOW-1422-400"), readErr: adobeErr(503, ""),
			wantAction:  flowservice.ActionDisable,
			wantCalls:   []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow", "FlowAction", "GetFlow"},
			wantFailure: true,
		},
		"action fails and the flow did not change": {
			suspend: true, adobeState: flowservice.StateEnabled,
			actionErr: adobeErr(503, ""), stateAfter: flowservice.StateEnabled,
			wantAction:  flowservice.ActionDisable,
			wantCalls:   []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow", "FlowAction", "GetFlow"},
			wantFailure: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, unitSource(), goodSecret())
			h.settle()
			a := h.adobe
			reads := 0
			a.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
				f := a.happyFlow(id)
				f.State = tc.adobeState
				if reads++; reads > 1 {
					if tc.readErr != nil {
						return nil, tc.readErr
					}
					f.State = tc.stateAfter
				}
				return f, nil
			}
			var actions []flowservice.Action
			a.FlowActionFn = func(_ context.Context, _ string, act flowservice.Action) error {
				actions = append(actions, act)
				return tc.actionErr
			}
			h.edit(func(cs *v1alpha1.CapillarySource) {
				cs.Spec.Suspend = tc.suspend
				cs.Generation = 2
			})

			h.reconcile()
			got := h.get()
			checkCalls(t, a, tc.wantCalls)
			var wantActions []flowservice.Action
			if tc.wantAction != "" {
				wantActions = []flowservice.Action{tc.wantAction}
			}
			if diff := cmp.Diff(wantActions, actions); diff != "" {
				t.Errorf("flow actions (-want +got):\n%s", diff)
			}
			if tc.wantFailure {
				checkConditionsOf(t, got, map[string]cond{
					v1alpha1.ConditionDataflowReady: isFalse(v1alpha1.ReasonAdobeUnavailable),
					v1alpha1.ConditionReconciling:   isTrue(v1alpha1.ReasonProgressingWithRetry),
				})
				if got.Status.ObservedGeneration != 1 || got.Status.Failures != 1 {
					t.Errorf("observedGeneration = %d, failures = %d; want 1 and 1", got.Status.ObservedGeneration, got.Status.Failures)
				}
				return
			}
			checkConds(t, got, readyConds(tc.wantReady))
			checkEvents(t, h, tc.wantEvents)
			if got.Status.DataflowState != tc.wantState || got.Status.ObservedGeneration != 2 {
				t.Errorf("dataflowState = %q, observedGeneration = %d; want %q and 2", got.Status.DataflowState, got.Status.ObservedGeneration, tc.wantState)
			}
		})
	}
}

// A mapping change updates the mapping set in place and points the flow at
// the new version with a PATCH.
func TestUnitReconcileMappingChange(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	h.settle()
	var updated flowservice.MappingSet
	h.adobe.UpdateMappingSetFn = func(_ context.Context, id string, in flowservice.MappingSet) (flowservice.MappingSetRef, error) {
		updated = in
		return flowservice.MappingSetRef{ID: id, Version: 2}, nil
	}
	var patches [][]flowservice.PatchOp
	h.adobe.PatchFlowFn = func(_ context.Context, _, _ string, ops []flowservice.PatchOp) error {
		patches = append(patches, ops)
		return nil
	}
	h.edit(func(cs *v1alpha1.CapillarySource) {
		cs.Spec.Mappings = append(cs.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: "tier", DestinationXdmPath: "loyalty.tier"})
		cs.Generation = 2
	})

	h.reconcile()
	got := h.get()
	checkCalls(t, h.adobe, []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection",
		"GetMappingSet", "UpdateMappingSet", "GetFlow", "PatchFlow"})
	checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
	checkEvents(t, h, []string{"Normal/Updated", "Normal/Updated"})
	if len(updated.Mappings) != 3 {
		t.Errorf("mapping set updated with %d mappings, want 3", len(updated.Mappings))
	}
	// The documented form: replace /transformations/0 (update-dataflows.md).
	want := []flowservice.PatchOp{{Op: flowservice.PatchReplace, Path: "/transformations/0", Value: flowservice.Transformation{
		Name: flowservice.TransformationMapping, Params: flowservice.TransformationParams{MappingID: fakeMappingID, MappingVersion: 2},
	}}}
	if len(patches) != 1 {
		t.Fatalf("%d flow patches, want 1: %+v", len(patches), patches)
	}
	if diff := cmp.Diff(want, patches[0]); diff != "" {
		t.Errorf("flow patch (-want +got):\n%s", diff)
	}
	if got.Status.MappingSetVersion != 2 || got.Status.ObservedGeneration != 2 {
		t.Errorf("mappingSetVersion = %d, observedGeneration = %d; want 2 and 2", got.Status.MappingSetVersion, got.Status.ObservedGeneration)
	}
}

// Terminal failures: Stalled, Ready False with the reason, no Reconciling,
// observedGeneration bumped (a verdict on this generation), a slow retry, one
// event; and an identical second pass writes nothing and says nothing.
func TestUnitReconcileTerminalErrors(t *testing.T) {
	imsRefused := &ims.Error{StatusCode: 401, Code: "invalid_client", Description: "invalid client_id parameter"}
	cases := map[string]struct {
		secret      map[string]string // nil: a good Secret
		noSecret    bool
		setup       func(*fakeAdobe)
		wantCond    string
		wantReason  string
		wantConnect bool
	}{
		"IMS invalid_client": {
			setup:    func(a *fakeAdobe) { a.CheckCredentialsFn = func(context.Context) error { return imsRefused } },
			wantCond: v1alpha1.ConditionCredentialsReady, wantReason: v1alpha1.ReasonInvalidCredentials, wantConnect: true,
		},
		"IMS invalid_scope, wrapped": {
			setup: func(a *fakeAdobe) {
				a.CheckCredentialsFn = func(context.Context) error {
					return fmt.Errorf("get token: %w", &ims.Error{StatusCode: 400, Code: "invalid_scope"})
				}
			},
			wantCond: v1alpha1.ConditionCredentialsReady, wantReason: v1alpha1.ReasonInvalidCredentials, wantConnect: true,
		},
		"403 from Flow Service": {
			setup: func(a *fakeAdobe) {
				a.GetConnectionSpecFn = func(context.Context, string) (*flowservice.ConnectionSpec, error) {
					return nil, &flowservice.Error{StatusCode: 403, Code: "FLOW-2118-403"}
				}
			},
			wantCond: v1alpha1.ConditionSourceConnectionReady, wantReason: v1alpha1.ReasonNotEntitled, wantConnect: true,
		},
		"403 on dataflow create": {
			setup: func(a *fakeAdobe) {
				a.CreateFlowFn = func(context.Context, flowservice.FlowInput) (string, error) {
					return "", &flowservice.Error{StatusCode: 403, Code: "FLOW-2118-403"}
				}
			},
			wantCond: v1alpha1.ConditionDataflowReady, wantReason: v1alpha1.ReasonNotEntitled, wantConnect: true,
		},
		"400 on target create": {
			setup: func(a *fakeAdobe) {
				a.CreateTargetConnectionFn = func(context.Context, flowservice.TargetConnectionInput) (string, error) {
					return "", adobeErr(400, "FLOW-1210-400")
				}
			},
			wantCond: v1alpha1.ConditionTargetConnectionReady, wantReason: v1alpha1.ReasonTargetRejected, wantConnect: true,
		},
		"400 on mapping create": {
			setup: func(a *fakeAdobe) {
				a.CreateMappingSetFn = func(context.Context, flowservice.MappingSet) (flowservice.MappingSetRef, error) {
					return flowservice.MappingSetRef{}, adobeErr(400, "CNV-4000-400")
				}
			},
			wantCond: v1alpha1.ConditionMappingReady, wantReason: v1alpha1.ReasonMappingRejected, wantConnect: true,
		},
		"connection spec 404": {
			setup: func(a *fakeAdobe) {
				a.GetConnectionSpecFn = func(context.Context, string) (*flowservice.ConnectionSpec, error) { return nil, notFound() }
			},
			wantCond: v1alpha1.ConditionSourceConnectionReady, wantReason: v1alpha1.ReasonConnectionSpecNotFound, wantConnect: true,
		},
		"connection spec is not a source": {
			setup: func(a *fakeAdobe) {
				a.GetConnectionSpecFn = func(_ context.Context, id string) (*flowservice.ConnectionSpec, error) {
					return &flowservice.ConnectionSpec{ID: id, Name: "data-lake"}, nil
				}
			},
			wantCond: v1alpha1.ConditionSourceConnectionReady, wantReason: v1alpha1.ReasonConnectionSpecNotFound, wantConnect: true,
		},
		"no flow spec lists the connection spec": {
			setup: func(a *fakeAdobe) {
				a.FlowSpecForFn = func(context.Context, string) (*flowservice.FlowSpec, error) { return nil, notFound() }
			},
			wantCond: v1alpha1.ConditionDataflowReady, wantReason: v1alpha1.ReasonFlowSpecNotFound, wantConnect: true,
		},
		"Secret missing": {
			noSecret: true,
			wantCond: v1alpha1.ConditionCredentialsReady, wantReason: v1alpha1.ReasonSecretNotFound,
		},
		"Secret key missing": {
			secret:   map[string]string{"clientId": unitClientID},
			wantCond: v1alpha1.ConditionCredentialsReady, wantReason: v1alpha1.ReasonSecretKeyMissing,
		},
		"Secret value empty": {
			secret:   map[string]string{"clientId": " \n", "clientSecret": unitClientSecret},
			wantCond: v1alpha1.ConditionCredentialsReady, wantReason: v1alpha1.ReasonSecretKeyMissing,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var objs []client.Object
			switch {
			case tc.noSecret:
			case tc.secret != nil:
				objs = append(objs, unitSecret(tc.secret))
			default:
				objs = append(objs, goodSecret())
			}
			h := newHarness(t, unitSource(), objs...)
			if tc.setup != nil {
				tc.setup(h.adobe)
			}

			res := h.reconcile()
			got := h.get()
			checkConditionsOf(t, got, map[string]cond{
				tc.wantCond:                   isFalse(tc.wantReason),
				v1alpha1.ConditionStalled:     isTrue(tc.wantReason),
				v1alpha1.ConditionReady:       isFalse(tc.wantReason),
				v1alpha1.ConditionReconciling: {},
			})
			if got.Status.ObservedGeneration != got.Generation {
				t.Errorf("observedGeneration = %d, want %d", got.Status.ObservedGeneration, got.Generation)
			}
			if got.Status.Failures != 0 || got.Status.LastFailureTime != nil {
				t.Errorf("failures = %d, lastFailureTime = %v; a terminal error is not a backoff step", got.Status.Failures, got.Status.LastFailureTime)
			}
			lo, hi := resyncBounds(unitStalled)
			within(t, "RequeueAfter", res.RequeueAfter, lo, hi)
			if diff := cmp.Diff([]string{"Warning/" + tc.wantReason}, warnings(h.events)); diff != "" {
				t.Errorf("warning events (-want +got):\n%s", diff)
			}
			firstEvents := h.events
			if connected := len(h.conn.Connects()) > 0; connected != tc.wantConnect {
				t.Errorf("connected to Adobe: %t, want %t", connected, tc.wantConnect)
			}

			// The slow retry fails the same way: no write, no new event.
			rv := got.ResourceVersion
			res = h.reconcile()
			if again := h.get(); again.ResourceVersion != rv {
				t.Errorf("a repeated terminal failure wrote status (resourceVersion %s → %s); diff:\n%s",
					rv, again.ResourceVersion, cmp.Diff(got.Status, again.Status))
			}
			within(t, "second RequeueAfter", res.RequeueAfter, lo, hi)
			checkEvents(t, h, firstEvents)
		})
	}
}

// Transient failures: Reconciling with retry, failures counted, backoff with
// jitter (or Adobe's Retry-After when longer), observedGeneration untouched.
func TestUnitReconcileTransientErrors(t *testing.T) {
	unavailable := adobeErr(503, "")
	cases := map[string]struct {
		setup         func(*fakeAdobe)
		status        func(*v1alpha1.CapillarySource) // the state before
		wantCond      string
		wantFailures  int32
		wantObsGen    int64
		wantLo, wantH time.Duration
	}{
		"503 on source create": {
			setup: func(a *fakeAdobe) {
				a.CreateSourceConnectionFn = func(context.Context, flowservice.SourceConnectionInput) (string, error) { return "", unavailable }
			},
			wantCond: v1alpha1.ConditionSourceConnectionReady, wantFailures: 1, wantObsGen: -1,
		},
		"IMS 503": {
			setup: func(a *fakeAdobe) {
				a.CheckCredentialsFn = func(context.Context) error { return &ims.Error{StatusCode: 503, Code: "server_error"} }
			},
			wantCond: v1alpha1.ConditionCredentialsReady, wantFailures: 1, wantObsGen: -1,
		},
		"timeout reading the connection spec": {
			setup: func(a *fakeAdobe) {
				a.GetConnectionSpecFn = func(context.Context, string) (*flowservice.ConnectionSpec, error) {
					// One request timing out, as net/http reports it.
					return nil, &url.Error{Op: "Get", URL: "https://platform.adobe.io/data/foundation/flowservice/connectionSpecs/x", Err: context.DeadlineExceeded}
				}
			},
			wantCond: v1alpha1.ConditionSourceConnectionReady, wantFailures: 1, wantObsGen: -1,
		},
		"429 with a Retry-After longer than the backoff": {
			setup: func(a *fakeAdobe) {
				a.CreateTargetConnectionFn = func(context.Context, flowservice.TargetConnectionInput) (string, error) {
					return "", &flowservice.Error{StatusCode: 429, Code: "429050", RetryAfter: 90 * time.Second}
				}
			},
			wantCond: v1alpha1.ConditionTargetConnectionReady, wantFailures: 1, wantObsGen: -1,
			wantLo: 90 * time.Second, wantH: 90 * time.Second,
		},
		"third failure in a row, on a changed spec": {
			setup: func(a *fakeAdobe) {
				a.CreateFlowFn = func(context.Context, flowservice.FlowInput) (string, error) { return "", unavailable }
			},
			status: func(cs *v1alpha1.CapillarySource) {
				cs.Generation = 2
				cs.Status.ObservedGeneration = 1
				cs.Status.Failures = 2
				cs.Status.LastFailureTime = &metav1.Time{Time: unitNow.Add(-time.Hour)}
				cs.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue,
					Reason: v1alpha1.ReasonProgressingWithRetry, ObservedGeneration: 2, LastTransitionTime: metav1.NewTime(unitNow.Add(-time.Hour))}}
			},
			wantCond: v1alpha1.ConditionDataflowReady, wantFailures: 3, wantObsGen: 1,
		},
		"backoff capped": {
			setup: func(a *fakeAdobe) {
				a.CreateFlowFn = func(context.Context, flowservice.FlowInput) (string, error) { return "", unavailable }
			},
			status: func(cs *v1alpha1.CapillarySource) {
				cs.Status.Failures = 40
				cs.Status.LastFailureTime = &metav1.Time{Time: unitNow.Add(-time.Hour)}
				cs.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue,
					Reason: v1alpha1.ReasonProgressingWithRetry, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow.Add(-time.Hour))}}
			},
			wantCond: v1alpha1.ConditionDataflowReady, wantFailures: 41, wantObsGen: -1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := unitSource()
			if tc.status != nil {
				tc.status(src)
			}
			h := newHarness(t, src, goodSecret())
			tc.setup(h.adobe)

			res := h.reconcile()
			got := h.get()
			checkConditionsOf(t, got, map[string]cond{
				tc.wantCond:                   isFalse(v1alpha1.ReasonAdobeUnavailable),
				v1alpha1.ConditionReconciling: isTrue(v1alpha1.ReasonProgressingWithRetry),
				v1alpha1.ConditionReady:       isFalse(v1alpha1.ReasonAdobeUnavailable),
				v1alpha1.ConditionStalled:     {},
			})
			if got.Status.Failures != tc.wantFailures {
				t.Errorf("failures = %d, want %d", got.Status.Failures, tc.wantFailures)
			}
			if got.Status.LastFailureTime == nil || !got.Status.LastFailureTime.Equal(&metav1.Time{Time: unitNow}) {
				t.Errorf("lastFailureTime = %v, want %v", got.Status.LastFailureTime, unitNow)
			}
			if got.Status.ObservedGeneration != tc.wantObsGen {
				t.Errorf("observedGeneration = %d, want %d (not bumped by a transient failure)", got.Status.ObservedGeneration, tc.wantObsGen)
			}
			lo, hi := tc.wantLo, tc.wantH
			if lo == 0 {
				lo, hi = retryBounds(int(tc.wantFailures))
			}
			within(t, "RequeueAfter", res.RequeueAfter, lo, hi)
			if w := warnings(h.events); len(w) != 0 {
				t.Errorf("warning events %v for a transient failure", w)
			}
		})
	}
}

// The backoff recorded in status holds across restarts; a spec change or a
// new manual trigger skips it.
func TestUnitReconcileBackoffGate(t *testing.T) {
	const token = "2026-03-02T15:04:00Z"
	backingOff := func(cs *v1alpha1.CapillarySource) {
		cs.Finalizers = []string{v1alpha1.Finalizer}
		cs.Status = v1alpha1.CapillarySourceStatus{
			ObservedGeneration: 1,
			SourceConnectionID: fakeSourceID, TargetConnectionID: fakeTargetID,
			MappingSetID: fakeMappingID, MappingSetVersion: 1,
			DataflowID: fakeDataflowID, FlowSpecID: flowservice.StreamingFlowSpecID, InletURL: fakeInletURL, DataflowState: flowservice.StateEnabled,
			Failures:        3,
			LastFailureTime: &metav1.Time{Time: unitNow.Add(-time.Second)},
			Conditions: []metav1.Condition{
				{Type: v1alpha1.ConditionDataflowReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonAdobeUnavailable, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow.Add(-time.Minute))},
				{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonProgressingWithRetry, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow.Add(-time.Minute))},
				{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonAdobeUnavailable, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow.Add(-time.Minute))},
			},
		}
	}
	cases := map[string]struct {
		mutate    func(*v1alpha1.CapillarySource)
		wantGated bool
	}{
		"within the backoff": {wantGated: true},
		"already handled manual trigger": {
			mutate: func(cs *v1alpha1.CapillarySource) {
				cs.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: token}
				cs.Status.LastHandledReconcileAt = token
			},
			wantGated: true,
		},
		"spec changed": {
			mutate: func(cs *v1alpha1.CapillarySource) { cs.Generation = 2 },
		},
		"new manual trigger": {
			mutate: func(cs *v1alpha1.CapillarySource) {
				cs.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: token}
			},
		},
		"backoff elapsed": {
			mutate: func(cs *v1alpha1.CapillarySource) {
				// The shortest jittered delay after 3 failures is 6.4s.
				cs.Status.LastFailureTime = &metav1.Time{Time: unitNow.Add(-7 * time.Second)}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := unitSource(backingOff)
			if tc.mutate != nil {
				tc.mutate(src)
			}
			h := newHarness(t, src, goodSecret())
			rv := h.get().ResourceVersion

			res := h.reconcile()
			got := h.get()
			if tc.wantGated {
				checkCalls(t, h.adobe, nil)
				if n := len(h.conn.Connects()); n != 0 {
					t.Errorf("connected to Adobe %d times while backing off", n)
				}
				_, hi := retryBounds(3)
				within(t, "RequeueAfter", res.RequeueAfter, time.Nanosecond, hi)
				if got.ResourceVersion != rv {
					t.Errorf("backing off wrote the resource (resourceVersion %s → %s)", rv, got.ResourceVersion)
				}
				return
			}
			if len(h.adobe.Calls()) == 0 {
				t.Error("no Adobe call: the backoff was not skipped")
			}
			checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
			if got.Status.Failures != 0 || got.Status.LastFailureTime != nil || got.Status.ObservedGeneration != got.Generation {
				t.Errorf("failures = %d, lastFailureTime = %v, observedGeneration = %d; want 0, nil, %d",
					got.Status.Failures, got.Status.LastFailureTime, got.Status.ObservedGeneration, got.Generation)
			}
			if want := src.Annotations[v1alpha1.ReconcileRequestAnnotation]; got.Status.LastHandledReconcileAt != want {
				t.Errorf("lastHandledReconcileAt = %q, want %q", got.Status.LastHandledReconcileAt, want)
			}
			lo, hi := resyncBounds(unitResync)
			within(t, "RequeueAfter", res.RequeueAfter, lo, hi)
		})
	}
}

// A PATCH refused for a stale etag is retried on a fresh read, at most three times.
func TestUnitReconcilePatchFlowPreconditionFailed(t *testing.T) {
	cases := map[string]struct {
		conflicts   int
		wantCalls   []string
		wantETags   []string
		wantReady   bool
		wantFailure int32
	}{
		"one conflict": {
			conflicts: 1,
			wantCalls: []string{"CheckCredentials", "GetFlow", "PatchFlow", "GetFlow", "PatchFlow"},
			wantETags: []string{"etag-1", "etag-2"},
			wantReady: true,
		},
		"two conflicts": {
			conflicts: 2,
			wantCalls: []string{"CheckCredentials", "GetFlow", "PatchFlow", "GetFlow", "PatchFlow", "GetFlow", "PatchFlow"},
			wantETags: []string{"etag-1", "etag-2", "etag-3"},
			wantReady: true,
		},
		"conflicts every time": {
			conflicts:   100,
			wantCalls:   []string{"CheckCredentials", "GetFlow", "PatchFlow", "GetFlow", "PatchFlow", "GetFlow", "PatchFlow"},
			wantETags:   []string{"etag-1", "etag-2", "etag-3"},
			wantFailure: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := unitSource()
			h := newHarness(t, src, goodSecret())
			h.settle()
			a := h.adobe
			reads := 0
			a.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
				reads++
				f := a.happyFlow(id)
				f.Name = "renamed in the UI"
				f.ETag = fmt.Sprintf("etag-%d", reads)
				return f, nil
			}
			var etags []string
			var ops [][]flowservice.PatchOp
			a.PatchFlowFn = func(_ context.Context, _, etag string, o []flowservice.PatchOp) error {
				etags = append(etags, etag)
				ops = append(ops, o)
				if len(etags) <= tc.conflicts {
					return &flowservice.Error{StatusCode: 412, Code: "FLOW-1404-412"}
				}
				return nil
			}

			h.now = h.now.Add(unitResync)
			h.reconcile()
			got := h.get()
			checkCalls(t, a, tc.wantCalls)
			if diff := cmp.Diff(tc.wantETags, etags); diff != "" {
				t.Errorf("If-Match etags (-want +got):\n%s", diff)
			}
			for _, o := range ops {
				want := []flowservice.PatchOp{{Op: flowservice.PatchReplace, Path: "/name", Value: adobeName(src, kindDataflow)}}
				if diff := cmp.Diff(want, o); diff != "" {
					t.Errorf("patch (-want +got):\n%s", diff)
				}
			}
			if tc.wantReady {
				checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
				checkEvents(t, h, []string{"Normal/Updated"})
				return
			}
			checkConditionsOf(t, got, map[string]cond{
				v1alpha1.ConditionDataflowReady: isFalse(v1alpha1.ReasonAdobeUnavailable),
				v1alpha1.ConditionReconciling:   isTrue(v1alpha1.ReasonProgressingWithRetry),
				v1alpha1.ConditionStalled:       {},
			})
			if got.Status.Failures != tc.wantFailure {
				t.Errorf("failures = %d, want %d", got.Status.Failures, tc.wantFailure)
			}
		})
	}
}

// Deletion: policy Delete removes the flow, then the connections (404 counts
// as done), then the finalizer; Orphan only drops the finalizer. When it
// cannot, it says so instead of hanging silently.
func TestUnitReconcileDelete(t *testing.T) {
	type deleted struct{ Kind, ID string }
	cases := map[string]struct {
		policy       v1alpha1.DeletionPolicy
		settled      bool // Ready before the delete; otherwise crashed after the first write
		noSecret     bool
		neverBegan   bool // failed before the first create (no SourceConnectionReady, no IDs)
		setup        func(*fakeAdobe)
		wantCalls    []string
		wantDeleted  []deleted
		wantGone     bool
		wantConds    map[string]cond
		wantRequeue  [2]time.Duration
		wantEvents   []string
		wantStatusID [3]string // what status still holds: source, target, dataflow
	}{
		"Delete: flow first, then the connections": {
			policy: v1alpha1.DeletionPolicyDelete, settled: true,
			wantCalls:   []string{"CheckCredentials", "DeleteFlow", "DeleteTargetConnection", "DeleteSourceConnection"},
			wantDeleted: []deleted{{"flow", fakeDataflowID}, {"target", fakeTargetID}, {"source", fakeSourceID}},
			wantGone:    true,
			wantEvents:  []string{"Normal/Deleted"},
		},
		"Delete: 404s count as done": {
			policy: v1alpha1.DeletionPolicyDelete, settled: true,
			setup: func(a *fakeAdobe) {
				a.DeleteFlowFn = func(context.Context, string) error { return notFound() }
				a.DeleteSourceConnectionFn = func(context.Context, string) error { return notFound() }
				a.DeleteTargetConnectionFn = func(context.Context, string) error { return notFound() }
			},
			wantCalls:  []string{"CheckCredentials", "DeleteFlow", "DeleteTargetConnection", "DeleteSourceConnection"},
			wantGone:   true,
			wantEvents: []string{"Normal/Deleted"},
		},
		"Delete: objects missing from status are found by name": {
			policy: v1alpha1.DeletionPolicyDelete,
			setup: func(a *fakeAdobe) {
				a.FindFlowFn = func(context.Context, string) (*flowservice.Flow, error) { return a.happyFlow("flow-lost"), nil }
				a.FindSourceConnectionFn = func(context.Context, string) (*flowservice.SourceConnection, error) {
					return &flowservice.SourceConnection{ID: "src-lost"}, nil
				}
				a.FindTargetConnectionFn = func(context.Context, string) (*flowservice.TargetConnection, error) {
					return &flowservice.TargetConnection{ID: "tgt-lost"}, nil
				}
			},
			wantCalls: []string{"CheckCredentials", "FindFlow", "DeleteFlow", "FindTargetConnection", "DeleteTargetConnection",
				"FindSourceConnection", "DeleteSourceConnection"},
			wantDeleted: []deleted{{"flow", "flow-lost"}, {"target", "tgt-lost"}, {"source", "src-lost"}},
			wantGone:    true,
			wantEvents:  []string{"Normal/Deleted"},
		},
		"Delete of a resource that never began creating: no Adobe call": {
			policy:     v1alpha1.DeletionPolicyDelete,
			noSecret:   true,
			neverBegan: true,
			wantGone:   true,
			wantEvents: []string{"Normal/Deleted"},
		},
		"Orphan: no Adobe call": {
			policy: v1alpha1.DeletionPolicyOrphan, settled: true,
			wantGone:   true,
			wantEvents: []string{"Normal/Orphaned"},
		},
		"Delete without the Secret: blocked, with the way out": {
			policy: v1alpha1.DeletionPolicyDelete, settled: true, noSecret: true,
			wantConds: map[string]cond{
				v1alpha1.ConditionReady:       isFalse(v1alpha1.ReasonDeleteBlocked),
				v1alpha1.ConditionStalled:     isTrue(v1alpha1.ReasonDeleteBlocked),
				v1alpha1.ConditionReconciling: {},
			},
			wantRequeue:  stalledBounds(),
			wantEvents:   []string{"Warning/" + v1alpha1.ReasonDeleteBlocked},
			wantStatusID: [3]string{fakeSourceID, fakeTargetID, fakeDataflowID},
		},
		"Delete while Adobe is unavailable: retried with backoff": {
			policy: v1alpha1.DeletionPolicyDelete, settled: true,
			setup: func(a *fakeAdobe) {
				a.DeleteFlowFn = func(context.Context, string) error { return adobeErr(503, "") }
			},
			wantCalls: []string{"CheckCredentials", "DeleteFlow"},
			wantConds: map[string]cond{
				v1alpha1.ConditionReady:       isFalse(v1alpha1.ReasonDeleteBlocked),
				v1alpha1.ConditionReconciling: isTrue(v1alpha1.ReasonDeleting),
				v1alpha1.ConditionStalled:     {},
			},
			wantRequeue:  [2]time.Duration{1600 * time.Millisecond, 2400 * time.Millisecond},
			wantStatusID: [3]string{fakeSourceID, fakeTargetID, fakeDataflowID},
		},
		"Delete: what was deleted is recorded when a connection fails": {
			policy: v1alpha1.DeletionPolicyDelete, settled: true,
			setup: func(a *fakeAdobe) {
				a.DeleteSourceConnectionFn = func(context.Context, string) error { return adobeErr(503, "") }
			},
			wantCalls:   []string{"CheckCredentials", "DeleteFlow", "DeleteTargetConnection", "DeleteSourceConnection"},
			wantDeleted: []deleted{{"flow", fakeDataflowID}, {"target", fakeTargetID}},
			wantConds: map[string]cond{
				v1alpha1.ConditionReady:       isFalse(v1alpha1.ReasonDeleteBlocked),
				v1alpha1.ConditionReconciling: isTrue(v1alpha1.ReasonDeleting),
			},
			wantRequeue:  [2]time.Duration{1600 * time.Millisecond, 2400 * time.Millisecond},
			wantStatusID: [3]string{fakeSourceID, "", ""},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := unitSource(func(cs *v1alpha1.CapillarySource) { cs.Spec.DeletionPolicy = tc.policy })
			if tc.neverBegan {
				src.Finalizers = []string{v1alpha1.Finalizer}
				src.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionCredentialsReady, Status: metav1.ConditionFalse,
					Reason: v1alpha1.ReasonSecretNotFound, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow)}}
			} else if !tc.settled {
				src.Finalizers = []string{v1alpha1.Finalizer}
				// The state after the marker write that precedes the first create.
				src.Status.Conditions = []metav1.Condition{
					{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
						Reason: v1alpha1.ReasonProgressing, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow)},
					{Type: v1alpha1.ConditionSourceConnectionReady, Status: metav1.ConditionFalse,
						Reason: v1alpha1.ReasonProgressing, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(unitNow)},
				}
			}
			secret := goodSecret()
			h := newHarness(t, src, secret)
			if tc.settled {
				h.settle()
			}
			if tc.noSecret {
				if err := h.c.Delete(t.Context(), secret); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.c.Delete(t.Context(), h.get()); err != nil {
				t.Fatal(err)
			}
			h.conn.creds = nil
			a := h.adobe
			if tc.setup != nil {
				tc.setup(a)
			}
			var got []deleted
			wrap := func(kind string, next func(context.Context, string) error) func(context.Context, string) error {
				return func(ctx context.Context, id string) error {
					var err error
					if next != nil {
						err = next(ctx, id)
					}
					if err == nil {
						got = append(got, deleted{kind, id})
					}
					return err
				}
			}
			a.DeleteFlowFn = wrap("flow", a.DeleteFlowFn)
			a.DeleteSourceConnectionFn = wrap("source", a.DeleteSourceConnectionFn)
			a.DeleteTargetConnectionFn = wrap("target", a.DeleteTargetConnectionFn)

			res := h.reconcile()
			checkCalls(t, a, tc.wantCalls)
			if diff := cmp.Diff(tc.wantDeleted, got); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
			if len(tc.wantCalls) == 0 && len(h.conn.Connects()) != 0 {
				t.Errorf("connected to Adobe with deletionPolicy %s", tc.policy)
			}
			checkEvents(t, h, tc.wantEvents)
			cs, exists := h.tryGet()
			if exists == tc.wantGone {
				t.Fatalf("resource exists after reconcile: %t, want %t", exists, !tc.wantGone)
			}
			if tc.wantGone {
				if res.RequeueAfter != 0 {
					t.Errorf("RequeueAfter = %v after release, want 0", res.RequeueAfter)
				}
				return
			}
			if !controllerutil.ContainsFinalizer(cs, v1alpha1.Finalizer) {
				t.Error("finalizer dropped although the Adobe objects were not deleted")
			}
			checkConditionsOf(t, cs, tc.wantConds)
			within(t, "RequeueAfter", res.RequeueAfter, tc.wantRequeue[0], tc.wantRequeue[1])
			ids := [3]string{cs.Status.SourceConnectionID, cs.Status.TargetConnectionID, cs.Status.DataflowID}
			if ids != tc.wantStatusID {
				t.Errorf("status IDs = %v, want %v", ids, tc.wantStatusID)
			}
		})
	}
}

// A pass that did not end Ready must not be followed by the cheap resync
// that trusts status: the work it left undone is done on the next pass.
func TestUnitReconcileRetryAfterFailedFullCheckIsFull(t *testing.T) {
	t.Run("stalled on a rejected mapping change", func(t *testing.T) {
		h := newHarness(t, unitSource(), goodSecret())
		h.settle()
		h.adobe.UpdateMappingSetFn = func(context.Context, string, flowservice.MappingSet) (flowservice.MappingSetRef, error) {
			return flowservice.MappingSetRef{}, adobeErr(400, "CNV-4000-400")
		}
		h.edit(func(cs *v1alpha1.CapillarySource) {
			cs.Spec.Mappings = append(cs.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: "tier", DestinationXdmPath: "no.such.path"})
			cs.Generation = 2
		})
		h.reconcile()
		checkConditionsOf(t, h.get(), map[string]cond{
			v1alpha1.ConditionMappingReady: isFalse(v1alpha1.ReasonMappingRejected),
			v1alpha1.ConditionStalled:      isTrue(v1alpha1.ReasonMappingRejected),
		})

		// The slow retry, nothing changed: Adobe still holds the old mappings.
		h.adobe.ResetCalls()
		h.now = h.now.Add(unitStalled)
		h.reconcile()
		got := h.get()
		checkConditionsOf(t, got, map[string]cond{
			v1alpha1.ConditionMappingReady: isFalse(v1alpha1.ReasonMappingRejected),
			v1alpha1.ConditionStalled:      isTrue(v1alpha1.ReasonMappingRejected),
			v1alpha1.ConditionReady:        isFalse(v1alpha1.ReasonMappingRejected),
		})
		if !slicesContains(h.adobe.Calls(), "UpdateMappingSet") {
			t.Errorf("the retry did not try the mapping set again: calls %v", h.adobe.Calls())
		}
	})

	t.Run("manual trigger whose pass failed transiently", func(t *testing.T) {
		const token = "check-everything"
		h := newHarness(t, unitSource(), goodSecret())
		h.settle()
		h.adobe.GetSourceConnectionFn = func(context.Context, string) (*flowservice.SourceConnection, error) {
			return nil, adobeErr(503, "")
		}
		h.edit(func(cs *v1alpha1.CapillarySource) {
			cs.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: token}
		})
		res := h.reconcile()
		if got := h.get(); got.Status.Failures != 1 {
			t.Fatalf("failures = %d, want 1", got.Status.Failures)
		}

		h.adobe.GetSourceConnectionFn = nil
		h.adobe.ResetCalls()
		h.now = h.now.Add(res.RequeueAfter)
		h.reconcile()
		checkCalls(t, h.adobe, []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow"})
		got := h.get()
		checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
		if got.Status.LastHandledReconcileAt != token {
			t.Errorf("lastHandledReconcileAt = %q, want %q", got.Status.LastHandledReconcileAt, token)
		}
	})
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A resync corrects what changed in Adobe: the state, the binding, the mapping.
func TestUnitReconcileResyncCorrectsDrift(t *testing.T) {
	cases := map[string]struct {
		flow       func(*flowservice.Flow) // what Adobe holds for flow-1
		getErr     error
		wantCalls  []string
		wantEvents []string
		wantConds  map[string]cond // only these are checked when set
		wantFlowID string
	}{
		"disabled out of band": {
			flow:       func(f *flowservice.Flow) { f.State = flowservice.StateDisabled },
			wantCalls:  []string{"CheckCredentials", "GetFlow", "FlowAction"},
			wantEvents: []string{"Normal/Resumed"},
			wantFlowID: fakeDataflowID,
		},
		"mapping removed out of band": {
			flow:       func(f *flowservice.Flow) { f.Transformations = nil },
			wantCalls:  []string{"CheckCredentials", "GetFlow", "PatchFlow"},
			wantEvents: []string{"Normal/Updated"},
			wantFlowID: fakeDataflowID,
		},
		"bound to other connections": {
			flow:       func(f *flowservice.Flow) { f.SourceConnectionIDs = []string{"src-other"} },
			wantCalls:  []string{"CheckCredentials", "GetFlow", "DeleteFlow", "CreateFlow", "GetFlow"},
			wantEvents: []string{"Normal/Recreated", "Normal/Created"},
			wantFlowID: "flow-2",
		},
		"read fails transiently": {
			getErr:    adobeErr(503, ""),
			wantCalls: []string{"CheckCredentials", "GetFlow"},
			wantConds: map[string]cond{
				v1alpha1.ConditionDataflowReady: isFalse(v1alpha1.ReasonAdobeUnavailable),
				v1alpha1.ConditionReconciling:   isTrue(v1alpha1.ReasonProgressingWithRetry),
				v1alpha1.ConditionStalled:       {},
			},
			wantFlowID: fakeDataflowID,
		},
		"read refused": {
			getErr:    adobeErr(403, "FLOW-2118-403"),
			wantCalls: []string{"CheckCredentials", "GetFlow"},
			wantConds: map[string]cond{
				v1alpha1.ConditionDataflowReady: isFalse(v1alpha1.ReasonNotEntitled),
				v1alpha1.ConditionStalled:       isTrue(v1alpha1.ReasonNotEntitled),
				v1alpha1.ConditionReconciling:   {},
			},
			wantEvents: []string{"Warning/" + v1alpha1.ReasonNotEntitled},
			wantFlowID: fakeDataflowID,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, unitSource(), goodSecret())
			h.settle()
			a := h.adobe
			a.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
				f := a.happyFlow(id)
				if id != fakeDataflowID {
					return f, nil
				}
				if tc.getErr != nil {
					return nil, tc.getErr
				}
				tc.flow(f)
				return f, nil
			}
			a.CreateFlowFn = func(context.Context, flowservice.FlowInput) (string, error) { return "flow-2", nil }

			h.now = h.now.Add(unitResync)
			h.reconcile()
			got := h.get()
			checkCalls(t, a, tc.wantCalls)
			checkEvents(t, h, tc.wantEvents)
			if tc.wantConds != nil {
				checkConditionsOf(t, got, tc.wantConds)
			} else {
				checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
			}
			if got.Status.DataflowID != tc.wantFlowID {
				t.Errorf("dataflowId = %q, want %q", got.Status.DataflowID, tc.wantFlowID)
			}
			if got.Status.ObservedGeneration != 1 {
				t.Errorf("observedGeneration = %d, want 1", got.Status.ObservedGeneration)
			}
		})
	}
}

// A dataflow without an inlet URL yet is not Ready; the next pass finds it.
func TestUnitReconcileInletNotYetKnown(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	inlet := ""
	h.adobe.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
		f := h.adobe.happyFlow(id)
		f.Options.InletURL = inlet
		return f, nil
	}
	res := h.reconcile()
	got := h.get()
	checkConditionsOf(t, got, map[string]cond{
		v1alpha1.ConditionDataflowReady: isFalse(v1alpha1.ReasonProgressing),
		v1alpha1.ConditionReconciling:   isTrue(v1alpha1.ReasonProgressingWithRetry),
		v1alpha1.ConditionStalled:       {},
	})
	if c := conds(got)[v1alpha1.ConditionReady]; c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v without an inlet URL", c)
	}
	if got.Status.DataflowID != fakeDataflowID || got.Status.ObservedGeneration != -1 {
		t.Errorf("dataflowId = %q, observedGeneration = %d; want %q and -1", got.Status.DataflowID, got.Status.ObservedGeneration, fakeDataflowID)
	}
	lo, hi := retryBounds(1)
	within(t, "RequeueAfter", res.RequeueAfter, lo, hi)

	inlet = fakeInletURL
	h.adobe.ResetCalls()
	h.now = h.now.Add(res.RequeueAfter)
	h.reconcile()
	got = h.get()
	checkCalls(t, h.adobe, []string{"CheckCredentials", "GetSourceConnection", "GetTargetConnection", "GetMappingSet", "GetFlow"})
	checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
	if got.Status.InletURL != fakeInletURL || got.Status.Failures != 0 {
		t.Errorf("inletUrl = %q, failures = %d", got.Status.InletURL, got.Status.Failures)
	}
}

// The adopt annotation takes over a dataflow and its connections when they
// match the spec, and refuses clearly (touching nothing) when they do not.
func TestUnitReconcileAdoption(t *testing.T) {
	const (
		flowID = "flow-hand-made"
		srcID  = "src-hand-made"
		tgtID  = "tgt-hand-made"
		msID   = "ms-hand-made"
	)
	cases := map[string]struct {
		flowErr    error
		flow       func(*flowservice.Flow)
		source     func(*flowservice.SourceConnection)
		target     func(*flowservice.TargetConnection)
		wantReason string // empty: adopted
	}{
		"matching": {},
		"no such flow": {
			flowErr: notFound(), wantReason: v1alpha1.ReasonAdoptionMismatch,
		},
		"two source connections": {
			flow:       func(f *flowservice.Flow) { f.SourceConnectionIDs = append(f.SourceConnectionIDs, "src-2") },
			wantReason: v1alpha1.ReasonAdoptionMismatch,
		},
		"another connection spec": {
			source:     func(s *flowservice.SourceConnection) { s.ConnectionSpec.ID = "00000000-0000-0000-0000-000000000000" },
			wantReason: v1alpha1.ReasonAdoptionMismatch,
		},
		"another dataset": {
			target:     func(c *flowservice.TargetConnection) { c.Params.DataSetID = "elsewhere" },
			wantReason: v1alpha1.ReasonAdoptionMismatch,
		},
		"another schema": {
			target:     func(c *flowservice.TargetConnection) { c.Data.Schema.ID = "https://ns.adobe.com/acme/schemas/other" },
			wantReason: v1alpha1.ReasonAdoptionMismatch,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := unitSource(func(cs *v1alpha1.CapillarySource) {
				cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: flowID}
			})
			h := newHarness(t, src, goodSecret())
			a := h.adobe
			a.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
				if id != flowID {
					return nil, notFound()
				}
				if tc.flowErr != nil {
					return nil, tc.flowErr
				}
				f := a.happyFlow(id)
				f.Name = "made by hand"
				f.SourceConnectionIDs, f.TargetConnectionIDs = []string{srcID}, []string{tgtID}
				f.Transformations = []flowservice.Transformation{{Name: flowservice.TransformationMapping,
					Params: flowservice.TransformationParams{MappingID: msID, MappingVersion: 3}}}
				if tc.flow != nil {
					tc.flow(f)
				}
				return f, nil
			}
			a.GetSourceConnectionFn = func(_ context.Context, id string) (*flowservice.SourceConnection, error) {
				s := &flowservice.SourceConnection{ID: id, ConnectionSpec: flowservice.SpecRef{ID: src.Spec.ConnectionSpecID, Version: "1.0"}}
				if tc.source != nil {
					tc.source(s)
				}
				return s, nil
			}
			a.GetTargetConnectionFn = func(_ context.Context, id string) (*flowservice.TargetConnection, error) {
				c := &flowservice.TargetConnection{ID: id,
					Data:   flowservice.TargetData{Format: "json", Schema: &flowservice.SchemaRef{ID: src.Spec.Target.SchemaID}},
					Params: flowservice.TargetParams{DataSetID: src.Spec.Target.DatasetID}}
				if tc.target != nil {
					tc.target(c)
				}
				return c, nil
			}
			a.GetMappingSetFn = func(_ context.Context, id string) (*flowservice.MappingSet, error) {
				return &flowservice.MappingSet{ID: id, Version: 3, Mappings: a.mappings}, nil
			}

			res := h.reconcile()
			got := h.get()
			for _, c := range a.Calls() {
				if strings.HasPrefix(c, "Create") || strings.HasPrefix(c, "Delete") || strings.HasPrefix(c, "Find") ||
					c == "PatchFlow" || c == "UpdateMappingSet" || c == "FlowAction" {
					t.Errorf("adoption called %s", c)
				}
			}
			if tc.wantReason != "" {
				checkConditionsOf(t, got, map[string]cond{
					v1alpha1.ConditionDataflowReady: isFalse(tc.wantReason),
					v1alpha1.ConditionStalled:       isTrue(tc.wantReason),
					v1alpha1.ConditionReady:         isFalse(tc.wantReason),
				})
				if st := got.Status; st.DataflowID != "" || st.SourceConnectionID != "" || st.TargetConnectionID != "" {
					t.Errorf("status took IDs from a flow it refused: %+v", st)
				}
				lo, hi := resyncBounds(unitStalled)
				within(t, "RequeueAfter", res.RequeueAfter, lo, hi)
				checkEvents(t, h, []string{"Warning/" + tc.wantReason})
				return
			}
			checkConds(t, got, readyConds(v1alpha1.ReasonSucceeded))
			checkEvents(t, h, []string{"Normal/Adopted"})
			wantIDs := [4]string{srcID, tgtID, msID, flowID}
			if ids := [4]string{got.Status.SourceConnectionID, got.Status.TargetConnectionID, got.Status.MappingSetID, got.Status.DataflowID}; ids != wantIDs {
				t.Errorf("IDs = %v, want %v", ids, wantIDs)
			}
			if got.Status.MappingSetVersion != 3 || got.Status.InletURL != fakeInletURL {
				t.Errorf("mappingSetVersion = %d, inletUrl = %q", got.Status.MappingSetVersion, got.Status.InletURL)
			}
		})
	}
}
