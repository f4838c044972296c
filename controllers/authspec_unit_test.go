package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// An authSpec with names no code here has seen: the operator must fill it
// from its schema alone.
const novelAuthSpec = `{
  "name": "Zebra OAuth Handshake",
  "type": "ZebraOAuthFlavour",
  "spec": {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
      "quuxIdentifier": {"type": "string", "minLength": 4},
      "frobnicatorSecret": {"type": "string", "format": "password"},
      "retries": {"type": "integer", "minimum": 1},
      "verbose": {"type": "boolean"},
      "region": {"type": "string", "default": "emea"},
      "protocol": {"type": "string", "const": "zebra-2"}
    },
    "required": ["quuxIdentifier", "frobnicatorSecret", "protocol"]
  }
}`

func connSpecWith(t *testing.T, authSpecs ...string) *flowservice.ConnectionSpec {
	t.Helper()
	spec := &flowservice.ConnectionSpec{ID: "c0ffee00-0000-4000-8000-000000000001", Name: "generic-streaming", Version: "1.0",
		Attributes: flowservice.ConnectionSpecAttributes{IsSource: true}}
	for _, a := range authSpecs {
		var as flowservice.AuthSpec
		if err := json.Unmarshal([]byte(a), &as); err != nil {
			t.Fatal(err)
		}
		spec.AuthSpec = append(spec.AuthSpec, as)
	}
	return spec
}

func secretWith(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "adobe", ResourceVersion: "7"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestUnitAuthSpecParams(t *testing.T) {
	method, err := readAuthSpec(connSpecWith(t, novelAuthSpec))
	if err != nil {
		t.Fatal(err)
	}
	if method.inlet != v1alpha1.InletAuthenticationOAuth2 || method.name != "Zebra OAuth Handshake" {
		t.Fatalf("read as %s / %q", method.inlet, method.name)
	}
	cases := map[string]struct {
		data       map[string]string
		keys       map[string]string
		want       map[string]any
		wantReason string
		wantIn     []string // words the message must hold
	}{
		"each param from the key of its name; const and default fill the rest": {
			data: map[string]string{"quuxIdentifier": "q-1234", "frobnicatorSecret": "s3cret-value", "retries": "3", "verbose": "true"},
			want: map[string]any{"quuxIdentifier": "q-1234", "frobnicatorSecret": "s3cret-value", "retries": int64(3), "verbose": true,
				"region": "emea", "protocol": "zebra-2"},
		},
		"a key in the Secret wins over the default": {
			data: map[string]string{"quuxIdentifier": "q-1234", "frobnicatorSecret": "x", "region": "apac"},
			want: map[string]any{"quuxIdentifier": "q-1234", "frobnicatorSecret": "x", "region": "apac", "protocol": "zebra-2"},
		},
		"params mapped to other keys": {
			data: map[string]string{"id": "q-1234", "secret": "x"},
			keys: map[string]string{"quuxIdentifier": "id", "frobnicatorSecret": "secret"},
			want: map[string]any{"quuxIdentifier": "q-1234", "frobnicatorSecret": "x", "region": "emea", "protocol": "zebra-2"},
		},
		"a required param the Secret lacks names the key to add": {
			data:       map[string]string{"quuxIdentifier": "q-1234"},
			wantReason: v1alpha1.ReasonSecretKeyMissing,
			wantIn:     []string{"frobnicatorSecret", "Zebra OAuth Handshake", "authParamKeys"},
		},
		"a mapped key that is missing is named as mapped": {
			data:       map[string]string{"quuxIdentifier": "q-1234"},
			keys:       map[string]string{"frobnicatorSecret": "the-secret"},
			wantReason: v1alpha1.ReasonSecretKeyMissing,
			wantIn:     []string{"the-secret"},
		},
		"a value the schema refuses": {
			data:       map[string]string{"quuxIdentifier": "q", "frobnicatorSecret": "hunter2hunter2"},
			wantReason: v1alpha1.ReasonAuthParamsInvalid,
			wantIn:     []string{"quuxIdentifier", "minLength"},
		},
		"a value of the wrong type": {
			data:       map[string]string{"quuxIdentifier": "q-1234", "frobnicatorSecret": "x", "retries": "many"},
			wantReason: v1alpha1.ReasonAuthParamsInvalid,
			wantIn:     []string{"retries", "integer"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := method.params(secretWith(tc.data), tc.keys)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("params (-want +got):\n%s", diff)
				}
				return
			}
			se, ok := err.(*stepError)
			if !ok || se.reason != tc.wantReason || !se.terminal {
				t.Fatalf("err = %v, want a terminal %s", err, tc.wantReason)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(se.message, w) {
					t.Errorf("message %q does not name %q", se.message, w)
				}
			}
			for _, v := range tc.data {
				if len(v) > 3 && strings.Contains(se.message, v) {
					t.Errorf("message %q holds a value from the Secret", se.message)
				}
			}
		})
	}
}

func TestUnitInletAuthenticationRule(t *testing.T) {
	hmac := `{"name": "Shared secret signing", "type": "HMAC", "spec": {"type": "object",
		"properties": {"sharedSecret": {"type": "string", "minLength": 32}}, "required": ["sharedSecret"]}}`
	unknown := `{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {"type": "object", "properties": {"username": {"type": "string"}}}}`
	nested := `{"name": "OAuth nested", "type": "OAuth2", "spec": {"type": "object", "properties": {"creds": {"type": "object"}}}}`
	yes := true
	required := connSpecWith(t)
	required.SourceSpec = &flowservice.SourceSpec{Attributes: flowservice.SourceSpecAttributes{AuthRequired: &yes}}
	cases := map[string]struct {
		spec    *flowservice.ConnectionSpec
		want    v1alpha1.InletAuthentication
		wantErr bool
	}{
		"no authSpec":                      {spec: connSpecWith(t), want: v1alpha1.InletAuthenticationNone},
		"OAuth":                            {spec: connSpecWith(t, novelAuthSpec), want: v1alpha1.InletAuthenticationOAuth2},
		"HMAC":                             {spec: connSpecWith(t, hmac), want: v1alpha1.InletAuthenticationHMAC},
		"the first known authSpec is used": {spec: connSpecWith(t, unknown, hmac), want: v1alpha1.InletAuthenticationHMAC},
		"only unknown authSpecs":           {spec: connSpecWith(t, unknown), wantErr: true},
		"a param a Secret cannot hold":     {spec: connSpecWith(t, nested), wantErr: true},
		"authRequired without an authSpec": {spec: required, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := readAuthSpec(tc.spec)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %t", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got := (resolvedSpecs{auth: m}).inletAuthentication(); got != tc.want {
				t.Errorf("inletAuthentication = %s, want %s", got, tc.want)
			}
		})
	}
}

// authSource is unitSource whose connection spec asks for a base connection.
func authHarness(t *testing.T) *harness {
	t.Helper()
	secret := unitSecret(map[string]string{"clientId": unitClientID, "clientSecret": unitClientSecret,
		"quuxIdentifier": "q-1234", "frobnicatorSecret": "frob-secret-value"})
	h := newHarness(t, unitSource(), secret)
	spec := connSpecWith(t, novelAuthSpec)
	h.adobe.GetConnectionSpecFn = func(_ context.Context, id string) (*flowservice.ConnectionSpec, error) {
		spec.ID = id
		return spec, nil
	}
	return h
}

func TestUnitBaseConnection(t *testing.T) {
	t.Run("created before the source connection, which names it", func(t *testing.T) {
		h := authHarness(t)
		var sent flowservice.ConnectionInput
		h.adobe.CreateConnectionFn = func(_ context.Context, in flowservice.ConnectionInput) (string, error) {
			sent = in
			return fakeBaseID, nil
		}
		var srcIn flowservice.SourceConnectionInput
		h.adobe.CreateSourceConnectionFn = func(_ context.Context, in flowservice.SourceConnectionInput) (string, error) {
			srcIn = in
			return fakeSourceID, nil
		}
		h.reconcile()
		checkCalls(t, h.adobe, []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor", "CreateConnection",
			"CreateSourceConnection", "CreateTargetConnection", "CreateMappingSet", "CreateFlow", "GetFlow"})
		cs := h.get()
		checkConditionsOf(t, cs, map[string]cond{
			v1alpha1.ConditionReady:               isTrue(v1alpha1.ReasonSucceeded),
			v1alpha1.ConditionBaseConnectionReady: isTrue(v1alpha1.ReasonSucceeded),
		})
		if cs.Status.BaseConnectionID != fakeBaseID || cs.Status.InletAuthentication != v1alpha1.InletAuthenticationOAuth2 {
			t.Errorf("status base %q, inlet %q", cs.Status.BaseConnectionID, cs.Status.InletAuthentication)
		}
		if sent.Auth.SpecName != "Zebra OAuth Handshake" || sent.Auth.Params["frobnicatorSecret"] != "frob-secret-value" ||
			sent.Auth.Params["protocol"] != "zebra-2" || sent.Name != adobeName(cs, "base") {
			t.Errorf("base connection sent as %+v", sent)
		}
		if srcIn.BaseConnectionID != fakeBaseID {
			t.Errorf("source connection names base %q, want %q", srcIn.BaseConnectionID, fakeBaseID)
		}
	})

	t.Run("a rotated Secret is patched, on the reconcile its watch brings", func(t *testing.T) {
		h := authHarness(t)
		h.settle()
		secret := &corev1.Secret{}
		if err := h.c.Get(t.Context(), keyOf("team-a", "adobe"), secret); err != nil {
			t.Fatal(err)
		}
		secret.Data["frobnicatorSecret"] = []byte("rotated-secret-value")
		if err := h.c.Update(t.Context(), secret); err != nil {
			t.Fatal(err)
		}
		var ops []flowservice.PatchOp
		h.adobe.PatchConnectionFn = func(_ context.Context, id, etag string, o []flowservice.PatchOp) error {
			if id != fakeBaseID || etag == "" {
				t.Errorf("PATCH %s with etag %q", id, etag)
			}
			ops = o
			return nil
		}
		h.reconcile()
		checkCalls(t, h.adobe, []string{"CheckCredentials", "GetConnection", "PatchConnection", "GetFlow"})
		if len(ops) != 1 || ops[0].Path != "/auth/params" || ops[0].Value.(map[string]any)["frobnicatorSecret"] != "rotated-secret-value" {
			t.Errorf("patch %+v", ops)
		}
		checkEvents(t, h, []string{"Normal/Updated"})
		// Done once: the next reconcile finds the params current.
		h.adobe.ResetCalls()
		h.reconcile()
		checkCalls(t, h.adobe, []string{"CheckCredentials", "GetFlow"})
	})

	t.Run("a Secret without a param's key stalls, naming it", func(t *testing.T) {
		h := authHarness(t)
		secret := &corev1.Secret{}
		if err := h.c.Get(t.Context(), keyOf("team-a", "adobe"), secret); err != nil {
			t.Fatal(err)
		}
		delete(secret.Data, "frobnicatorSecret")
		if err := h.c.Update(t.Context(), secret); err != nil {
			t.Fatal(err)
		}
		h.reconcile()
		checkCalls(t, h.adobe, []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor"})
		cs := h.get()
		checkConditionsOf(t, cs, map[string]cond{
			v1alpha1.ConditionStalled:             isTrue(v1alpha1.ReasonSecretKeyMissing),
			v1alpha1.ConditionBaseConnectionReady: isFalse(v1alpha1.ReasonSecretKeyMissing),
		})
		if cs.Status.CreateStartedAt != nil {
			t.Error("nothing was sent, yet the create marker is set")
		}
	})

	t.Run("deleted after the source connection", func(t *testing.T) {
		h := authHarness(t)
		h.settle()
		if err := h.c.Delete(t.Context(), h.get()); err != nil {
			t.Fatal(err)
		}
		h.reconcile()
		checkCalls(t, h.adobe, []string{"CheckCredentials", "DeleteFlow", "DeleteTargetConnection", "DeleteSourceConnection", "DeleteConnection"})
		if _, exists := h.tryGet(); exists {
			t.Error("resource stays after its objects were deleted")
		}
	})

	t.Run("a lost create answer is found by name", func(t *testing.T) {
		h := authHarness(t)
		created := false
		h.adobe.CreateConnectionFn = func(context.Context, flowservice.ConnectionInput) (string, error) {
			created = true
			return "", adobeErr(503, "")
		}
		h.reconcile()
		if !created {
			t.Fatal("no create was tried")
		}
		h.adobe.ResetCalls()
		h.adobe.CreateConnectionFn = nil
		h.adobe.FindConnectionFn = func(context.Context, string) (*flowservice.Connection, error) {
			return &flowservice.Connection{ID: "base-lost", ETag: `"e"`}, nil
		}
		h.now = h.now.Add(unitMax)
		h.reconcile()
		calls := h.adobe.Calls()
		if count(calls, "CreateConnection") != 0 || count(calls, "FindConnection") != 1 {
			t.Errorf("calls %v: want the lost base connection found, not made twice", calls)
		}
		if got := h.get().Status.BaseConnectionID; got != "base-lost" {
			t.Errorf("baseConnectionId = %q, want base-lost", got)
		}
	})
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// What the operator cannot do stalls before anything is created, naming
// what to look at.
func TestUnitSpecDrivenStalls(t *testing.T) {
	streamingOptions := json.RawMessage(`{"name": "OptionSpec for GenericStreamingAEP", "spec": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
		"properties": {"errorDiagnosticsEnabled": {"type": "boolean"}, "partialIngestionPercent": {"type": "number", "exclusiveMinimum": 0, "maximum": 50}}}}`)
	cases := map[string]struct {
		authSpec   string
		optionSpec json.RawMessage
		dataflow   *v1alpha1.DataflowOptions
		wantCond   string
		wantReason string
		wantCalls  []string
	}{
		"an authSpec of a kind the operator does not know": {
			authSpec:   `{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {"type": "object", "properties": {"username": {"type": "string"}}}}`,
			wantCond:   v1alpha1.ConditionSourceConnectionReady,
			wantReason: v1alpha1.ReasonAuthSpecUnsupported,
			wantCalls:  []string{"CheckCredentials", "GetConnectionSpec"},
		},
		"an option the flow spec does not offer": {
			dataflow:   &v1alpha1.DataflowOptions{ErrorDiagnosticsEnabled: true},
			wantCond:   v1alpha1.ConditionDataflowReady,
			wantReason: v1alpha1.ReasonDataflowOptionUnsupported,
			wantCalls:  []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor", "CreateSourceConnection", "CreateTargetConnection", "CreateMappingSet"},
		},
		"a value the flow spec's optionSpec refuses": {
			optionSpec: streamingOptions,
			dataflow:   &v1alpha1.DataflowOptions{PartialIngestionPercent: ptr[int32](80)},
			wantCond:   v1alpha1.ConditionDataflowReady,
			wantReason: v1alpha1.ReasonDataflowOptionUnsupported,
			wantCalls:  []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor", "CreateSourceConnection", "CreateTargetConnection", "CreateMappingSet"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, unitSource(func(cs *v1alpha1.CapillarySource) { cs.Spec.Dataflow = tc.dataflow }), goodSecret())
			if tc.authSpec != "" {
				spec := connSpecWith(t, tc.authSpec)
				h.adobe.GetConnectionSpecFn = func(context.Context, string) (*flowservice.ConnectionSpec, error) { return spec, nil }
			}
			h.adobe.FlowSpecForFn = func(_ context.Context, id string) (*flowservice.FlowSpec, error) {
				return &flowservice.FlowSpec{ID: flowservice.StreamingFlowSpecID, Version: "1.0", SourceConnectionSpecIDs: []string{id}, OptionSpec: tc.optionSpec}, nil
			}
			h.reconcile()
			checkCalls(t, h.adobe, tc.wantCalls)
			checkConditionsOf(t, h.get(), map[string]cond{
				tc.wantCond:               isFalse(tc.wantReason),
				v1alpha1.ConditionStalled: isTrue(tc.wantReason),
			})
		})
	}
}
