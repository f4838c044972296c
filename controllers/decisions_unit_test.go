package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

// jitterSamples is how often a jittered value is drawn to check its bounds.
const jitterSamples = 200

func unitReconciler() *CapillarySourceReconciler {
	return &CapillarySourceReconciler{
		ResyncInterval: unitResync, StalledRetryInterval: unitStalled,
		RetryBaseDelay: unitBase, RetryMaxDelay: unitMax,
	}
}

func TestUnitBackoff(t *testing.T) {
	cases := []struct {
		failures int32
		want     time.Duration
	}{
		{-1, 0},
		{0, 0},
		{1, 2 * time.Second},
		{2, 4 * time.Second},
		{3, 8 * time.Second},
		{8, 256 * time.Second},
		{9, 5 * time.Minute}, // 512s, capped
		{100, 5 * time.Minute},
		{1 << 30, 5 * time.Minute}, // no overflow however long the outage
	}
	r := unitReconciler()
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.failures), func(t *testing.T) {
			if got := r.backoff(tc.failures); got != tc.want {
				t.Errorf("backoff(%d) = %v, want %v", tc.failures, got, tc.want)
			}
			lo, hi := time.Duration(float64(tc.want)*0.8), time.Duration(float64(tc.want)*1.2)
			var least, most time.Duration = hi, lo
			for range jitterSamples {
				d := r.retryDelay(tc.failures)
				least, most = min(least, d), max(most, d)
			}
			if least < lo || most > hi {
				t.Errorf("retryDelay(%d) ranged over [%v, %v], want within [%v, %v]", tc.failures, least, most, lo, hi)
			}
			if tc.want > 0 && least == most {
				t.Errorf("retryDelay(%d) is always %v: no jitter", tc.failures, least)
			}
		})
	}
}

func TestUnitResyncInterval(t *testing.T) {
	cases := map[string]struct {
		annotation *string
		want       time.Duration
	}{
		"flag":                      {want: unitResync},
		"annotation":                {annotation: ptr("30m"), want: 30 * time.Minute},
		"annotation, compound":      {annotation: ptr("1h30m"), want: 90 * time.Minute},
		"annotation below 1m":       {annotation: ptr("10s"), want: time.Minute},
		"annotation zero":           {annotation: ptr("0s"), want: time.Minute},
		"annotation negative":       {annotation: ptr("-5m"), want: time.Minute},
		"annotation not a duration": {annotation: ptr("hourly"), want: unitResync},
		"annotation empty":          {annotation: ptr(""), want: unitResync},
	}
	r := unitReconciler()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cs := unitSource()
			if tc.annotation != nil {
				cs.Annotations = map[string]string{v1alpha1.ResyncIntervalAnnotation: *tc.annotation}
			}
			lo, hi := resyncBounds(tc.want)
			for range jitterSamples {
				within(t, "resyncInterval", r.resyncInterval(cs), lo, hi)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestUnitDataflowPatch(t *testing.T) {
	const adoptedID = "flow-adopted"
	name := adobeName(unitSource(), kindDataflow)
	mappingV := func(v int) []flowservice.Transformation {
		return []flowservice.Transformation{{Name: flowservice.TransformationMapping,
			Params: flowservice.TransformationParams{MappingID: fakeMappingID, MappingVersion: v}}}
	}
	withMapping := func(v int64) func(*v1alpha1.CapillarySource) {
		return func(cs *v1alpha1.CapillarySource) {
			cs.Status.MappingSetID, cs.Status.MappingSetVersion = fakeMappingID, v
		}
	}
	cases := map[string]struct {
		source func(*v1alpha1.CapillarySource)
		flow   flowservice.Flow
		want   []flowservice.PatchOp
	}{
		"matches": {
			source: withMapping(1),
			flow:   flowservice.Flow{Name: name, Transformations: mappingV(1)},
		},
		"matches without mappings": {
			flow: flowservice.Flow{Name: name},
		},
		"renamed": {
			source: withMapping(1),
			flow:   flowservice.Flow{Name: "renamed in the UI", Transformations: mappingV(1)},
			want:   []flowservice.PatchOp{{Op: flowservice.PatchReplace, Path: "/name", Value: name}},
		},
		"old mapping version: the documented replace of /transformations/0": {
			source: withMapping(2),
			flow:   flowservice.Flow{Name: name, Transformations: mappingV(1)},
			want:   []flowservice.PatchOp{{Op: flowservice.PatchReplace, Path: "/transformations/0", Value: mappingV(2)[0]}},
		},
		"mapping removed out of band": {
			source: withMapping(1),
			flow:   flowservice.Flow{Name: name},
			want:   []flowservice.PatchOp{{Path: "/transformations", Value: mappingV(1)}},
		},
		"mappings dropped from the spec": {
			flow: flowservice.Flow{Name: name, Transformations: mappingV(1)},
			want: []flowservice.PatchOp{{Path: "/transformations", Value: []flowservice.Transformation{}}},
		},
		"renamed and old mapping": {
			source: withMapping(2),
			flow:   flowservice.Flow{Name: "x", Transformations: mappingV(1)},
			want: []flowservice.PatchOp{
				{Op: flowservice.PatchReplace, Path: "/name", Value: name},
				{Op: flowservice.PatchReplace, Path: "/transformations/0", Value: mappingV(2)[0]},
			},
		},
		"error diagnostics turned on": {
			source: func(cs *v1alpha1.CapillarySource) {
				cs.Spec.Dataflow = &v1alpha1.DataflowOptions{ErrorDiagnosticsEnabled: true}
			},
			flow: flowservice.Flow{Name: name},
			want: []flowservice.PatchOp{{Op: flowservice.PatchAdd, Path: "/options/errorDiagnosticsEnabled", Value: true}},
		},
		"partial ingestion set": {
			source: func(cs *v1alpha1.CapillarySource) {
				cs.Spec.Dataflow = &v1alpha1.DataflowOptions{PartialIngestionPercent: ptr[int32](5)}
			},
			flow: flowservice.Flow{Name: name},
			want: []flowservice.PatchOp{{Op: flowservice.PatchAdd, Path: "/options/partialIngestionPercent", Value: int32(5)}},
		},
		"partial ingestion as set": {
			source: func(cs *v1alpha1.CapillarySource) {
				cs.Spec.Dataflow = &v1alpha1.DataflowOptions{PartialIngestionPercent: ptr[int32](5)}
			},
			flow: flowservice.Flow{Name: name, Options: flowservice.FlowOptions{PartialIngestionPercent: ptr(5.0)}},
		},
		"partial ingestion dropped from the spec": {
			source: func(cs *v1alpha1.CapillarySource) { cs.Spec.Dataflow = &v1alpha1.DataflowOptions{} },
			flow:   flowservice.Flow{Name: name, Options: flowservice.FlowOptions{PartialIngestionPercent: ptr(5.0)}},
			want:   []flowservice.PatchOp{{Op: flowservice.PatchRemove, Path: "/options/partialIngestionPercent", Value: 5.0}},
		},
		"no spec.dataflow leaves the options alone": {
			flow: flowservice.Flow{Name: name, Options: flowservice.FlowOptions{ErrorDiagnosticsEnabled: true, PartialIngestionPercent: ptr(5.0)}},
		},
		"adopted flow keeps its name": {
			source: func(cs *v1alpha1.CapillarySource) {
				cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: adoptedID}
				cs.Status.DataflowID = adoptedID
			},
			flow: flowservice.Flow{ID: adoptedID, Name: "made by hand"},
		},
		"adoption annotation for another flow does not keep the name": {
			source: func(cs *v1alpha1.CapillarySource) {
				cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: "some-other-flow"}
				cs.Status.DataflowID = adoptedID
			},
			flow: flowservice.Flow{ID: adoptedID, Name: "made by hand"},
			want: []flowservice.PatchOp{{Op: flowservice.PatchReplace, Path: "/name", Value: name}},
		},
	}
	for n, tc := range cases {
		t.Run(n, func(t *testing.T) {
			cs := unitSource()
			if tc.source != nil {
				tc.source(cs)
			}
			got := dataflowPatch(cs, &tc.flow)
			// Setting /transformations may be add or replace (both correct
			// JSON Patch for a member that exists, add also for one that does
			// not), and clearing it remove or an empty list: compare what the
			// patch means.
			for i := range got {
				if got[i].Path != "/transformations" {
					continue
				}
				switch got[i].Op {
				case flowservice.PatchAdd, flowservice.PatchReplace:
				case flowservice.PatchRemove:
					got[i].Value = []flowservice.Transformation{}
				default:
					t.Errorf("op %q on /transformations", got[i].Op)
				}
				got[i].Op = ""
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("dataflowPatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnitSameMappings(t *testing.T) {
	m := func(src, dst string, id bool) flowservice.Mapping {
		return flowservice.Mapping{Source: src, Destination: dst, Identity: id}
	}
	a, b, c := m("points", "loyalty.points", false), m("email", "identityMap.email[0].id", true), m("tier", "loyalty.tier", false)
	withExtras := func(x flowservice.Mapping) flowservice.Mapping {
		x.ID, x.SourceType, x.Name, x.Description = "adobe-assigned", flowservice.SourceTypeAttribute, "n", "d"
		return x
	}
	cases := map[string]struct {
		x, y []flowservice.Mapping
		want bool
	}{
		"both empty":                   {want: true},
		"nil and empty":                {x: nil, y: []flowservice.Mapping{}, want: true},
		"same order":                   {x: []flowservice.Mapping{a, b}, y: []flowservice.Mapping{a, b}, want: true},
		"other order":                  {x: []flowservice.Mapping{a, b, c}, y: []flowservice.Mapping{c, a, b}, want: true},
		"Adobe's extra fields ignored": {x: []flowservice.Mapping{a, b}, y: []flowservice.Mapping{withExtras(b), withExtras(a)}, want: true},
		"one more":                     {x: []flowservice.Mapping{a, b}, y: []flowservice.Mapping{a, b, c}},
		"one fewer":                    {x: []flowservice.Mapping{a, b}, y: []flowservice.Mapping{a}},
		"identity differs":             {x: []flowservice.Mapping{b}, y: []flowservice.Mapping{m(b.Source, b.Destination, false)}},
		"destination differs":          {x: []flowservice.Mapping{a}, y: []flowservice.Mapping{m(a.Source, "loyalty.balance", false)}},
		"source differs":               {x: []flowservice.Mapping{a}, y: []flowservice.Mapping{m("balance", a.Destination, false)}},
		"duplicate vs distinct":        {x: []flowservice.Mapping{a, a}, y: []flowservice.Mapping{a, b}},
		"fields do not run together": {
			x: []flowservice.Mapping{m("a.b", "c", false)}, y: []flowservice.Mapping{m("a", "b.c", false)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := sameMappings(tc.x, tc.y); got != tc.want {
				t.Errorf("sameMappings = %t, want %t", got, tc.want)
			}
			if got := sameMappings(tc.y, tc.x); got != tc.want {
				t.Errorf("sameMappings (swapped) = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestUnitAdobeName(t *testing.T) {
	src := func(ns, name, uid string) *v1alpha1.CapillarySource {
		return unitSource(func(cs *v1alpha1.CapillarySource) {
			cs.Namespace, cs.Name, cs.UID = ns, name, types.UID(uid)
		})
	}
	const uid1, uid2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	long := strings.Repeat("n", 253)
	longNS := strings.Repeat("s", 63)

	t.Run("contract format", func(t *testing.T) {
		got := adobeName(src("team-a", "loyalty", uid1), kindDataflow)
		if want := "capillary-team-a-loyalty-" + uid1 + "-dataflow"; got != want {
			t.Errorf("adobeName = %q, want %q", got, want)
		}
	})

	t.Run("unique", func(t *testing.T) {
		sources := []*v1alpha1.CapillarySource{
			src("team-a", "loyalty", uid1),
			src("team-a", "loyalty", uid2),       // recreated with the same name
			src("team-b", "loyalty", uid2+"x"),   // namesake in another namespace
			src("a-b", "c", uid1+"y"),            // dashes do not make names collide...
			src("a", "b-c", uid1+"z"),            // ...because the UID differs
			src(longNS, long, uid1+"l"),          // trimmed...
			src(longNS, long+"-other", uid2+"l"), // ...to the same prefix as this one
		}
		seen := map[string]string{}
		for _, cs := range sources {
			for _, kind := range []string{kindSource, kindTarget, kindDataflow} {
				n := adobeName(cs, kind)
				who := fmt.Sprintf("%s/%s(%s) %s", cs.Namespace, cs.Name, cs.UID, kind)
				if prev, dup := seen[n]; dup {
					t.Errorf("%s and %s share the name %q", prev, who, n)
				}
				seen[n] = who
				if again := adobeName(cs.DeepCopy(), kind); again != n {
					t.Errorf("not deterministic: %q then %q", n, again)
				}
			}
		}
	})

	t.Run("length bounded", func(t *testing.T) {
		cs := src(longNS, long, uid1)
		for _, kind := range []string{kindSource, kindTarget, kindDataflow} {
			n := adobeName(cs, kind)
			limit := len("capillary-") + 2*maxNamePart + len(uid1) + len(kind) + 3
			if len(n) > limit {
				t.Errorf("%s name is %d long, want at most %d", kind, len(n), limit)
			}
			if !strings.Contains(n, uid1) || !strings.HasSuffix(n, "-"+kind) {
				t.Errorf("trimmed name %q lost the UID or the kind", n)
			}
		}
	})
}

func TestUnitClassify(t *testing.T) {
	const cond = v1alpha1.ConditionTargetConnectionReady
	type want struct {
		Condition  string
		Reason     string
		Terminal   bool
		RetryAfter time.Duration
	}
	const requestID, debugID = "req-7f3a9c", "dbg-51e0"
	passThrough := terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretNotFound, "Secret gone", nil)
	cases := map[string]struct {
		err  error
		want want
	}{
		"IMS invalid_client": {
			err:  &ims.Error{DebugID: debugID, StatusCode: 401, Code: "invalid_client"},
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonInvalidCredentials, true, 0},
		},
		"IMS 400 without a code": {
			err:  &ims.Error{DebugID: debugID, StatusCode: 400},
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonInvalidCredentials, true, 0},
		},
		"IMS invalid_scope, wrapped by the Flow Service client": {
			err:  fmt.Errorf("get token: %w", &ims.Error{DebugID: debugID, StatusCode: 400, Code: "invalid_scope"}),
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonInvalidCredentials, true, 0},
		},
		"IMS 503 with Retry-After": {
			err:  &ims.Error{DebugID: debugID, StatusCode: 503, RetryAfter: 30 * time.Second},
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonAdobeUnavailable, false, 30 * time.Second},
		},
		"IMS answer without a token": {
			err:  &ims.Error{DebugID: debugID, StatusCode: 200, Code: ims.CodeInvalidResponse},
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"403": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 403, Code: "FLOW-2118-403"},
			want: want{cond, v1alpha1.ReasonNotEntitled, true, 0},
		},
		"403, wrapped": {
			err:  fmt.Errorf("create: %w", &flowservice.Error{RequestID: requestID, StatusCode: 403}),
			want: want{cond, v1alpha1.ReasonNotEntitled, true, 0},
		},
		"400": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 400, Code: "FLOW-1210-400", Detail: "dataset not found"},
			want: want{cond, v1alpha1.ReasonAdobeRejected, true, 0},
		},
		"409": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 409},
			want: want{cond, v1alpha1.ReasonAdobeRejected, true, 0},
		},
		"422": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 422},
			want: want{cond, v1alpha1.ReasonAdobeRejected, true, 0},
		},
		"400 with a transient Flow Service code": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 400, Code: "FLOW-1103-400"},
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		// The client has renewed the token once already: a new token was
		// refused too. Retried once with backoff; refusedAgain makes the
		// second pass in a row terminal (issue 16, token revoked).
		"401 from the gateway": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 401, Code: "401013"},
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"404 (callers handle it first)": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 404},
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"412": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 412, Code: "FLOW-1404-412"},
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"429 with Retry-After": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 429, RetryAfter: 90 * time.Second},
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 90 * time.Second},
		},
		"500": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 500},
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"503": {
			err:  &flowservice.Error{RequestID: requestID, StatusCode: 503},
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"timeout": {
			err:  fmt.Errorf("post: %w", context.DeadlineExceeded),
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"network": {
			err:  &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")},
			want: want{cond, v1alpha1.ReasonAdobeUnavailable, false, 0},
		},
		"a step error passes through unchanged": {
			err:  fmt.Errorf("wrapped: %w", passThrough),
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretNotFound, true, 0},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			se := classify(cond, "create the target connection", tc.err)
			got := want{se.condition, se.reason, se.terminal, se.retryAfter}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("classify (-want +got):\n%s", diff)
			}
			if !errors.Is(se, tc.err) && !errors.Is(tc.err, se) {
				t.Errorf("the stepError does not wrap the original error")
			}
			if se.message == "" {
				t.Error("no message")
			}
			// Identical failures must write identical conditions: nothing
			// per-request may reach the message.
			for _, id := range []string{requestID, debugID} {
				if strings.Contains(se.message, id) {
					t.Errorf("message %q holds the per-request id %s", se.message, id)
				}
			}
		})
	}
}
