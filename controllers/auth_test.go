package controllers_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// extraSecrets are secrets these tests made up, for the leak scan.
var extraSecrets = []string{hmacSecret, hmacSecretRotated, rotatedClientSecret}

const (
	hmacSecret          = "hmac-shared-secret-0123456789abcdef"
	hmacSecretRotated   = "hmac-shared-secret-rotated-fedcba9876543210"
	rotatedClientSecret = "suite-secret-rotated-1a2b3c4d5e6f"
)

// authEmulator starts an emulator serving the Capillary connection spec in
// the given auth variant, and an operator pointed at it.
func authEmulator(t *testing.T, variant emulator.ConnectionAuth) *emulator.Emulator {
	t.Helper()
	emu := startEmulator(t, func(o *emulator.Options) { o.ConnectionAuth = variant })
	startOperator(t, fastRetries, atEmulator(emu))
	return emu
}

// atEmulator points an operator at emu.
func atEmulator(emu *emulator.Emulator) func(*manager.Options) {
	return func(o *manager.Options) { o.IMSURL, o.PlatformURL = emu.URL(), emu.URL() }
}

// startEmulator starts an emulator of the test's own, accepting the suite's
// credential and checking requests against Adobe's specs like the suite's.
func startEmulator(t *testing.T, mutate func(*emulator.Options)) *emulator.Emulator {
	t.Helper()
	opts := emulator.Options{Credentials: map[string]string{clientID: clientSecret}}
	mutate(&opts)
	if localenvtest.SpecsAvailable() {
		dir, err := aepspec.Dir()
		if err != nil {
			t.Fatal(err)
		}
		if opts.SpecValidator, err = aepspec.Load(dir); err != nil {
			t.Fatal(err)
		}
	}
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// post sends one event to the inlet as the docs say for the variant, with
// the headers hdr adds, and answers the status.
func post(t *testing.T, inlet string, hdr map[string]string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, inlet, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// imsToken gets a token as Capillary would, and records it for the leak scan.
func imsToken(t *testing.T, emu *emulator.Emulator, id, secret string) string {
	t.Helper()
	tok, err := localenv.IMSToken(context.Background(), emu.URL(), id, secret)
	if err != nil {
		t.Fatal(err)
	}
	tokenRecorder.mu.Lock()
	tokenRecorder.tokens[tok] = true
	tokenRecorder.mu.Unlock()
	return tok
}

// sign is HMAC-SHA256 of the exact body, lowercase hex (the emulator's
// documented assumption; Adobe has not published the encoding).
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// editSecret changes the namespace's credential Secret as a user would.
func editSecret(t *testing.T, ns string, edit func(*corev1.Secret)) {
	t.Helper()
	secret := &corev1.Secret{}
	if err := suite.Env.Client.Get(context.Background(), keyOf(ns, localenvtest.SecretName), secret); err != nil {
		t.Fatal(err)
	}
	edit(secret)
	if err := suite.Env.Client.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
}

func setKeys(data map[string]string) func(*corev1.Secret) {
	return func(s *corev1.Secret) {
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
	}
}

func connectionsOf(emu *emulator.Emulator, kind emulator.Kind, cs *v1alpha1.CapillarySource) []emulator.Object {
	var out []emulator.Object
	for _, o := range emu.Objects().Of(kind) {
		if strings.Contains(o.Name(), string(cs.UID)) {
			out = append(out, o)
		}
	}
	return out
}

func TestAuthenticatedSources(t *testing.T) {
	event := []byte(`{"loyalty":{"points":120},"identityMap":{"email":[{"id":"ana@example.com"}]}}`)
	cases := []struct {
		variant emulator.ConnectionAuth
		inlet   v1alpha1.InletAuthentication
		// secret is the Secret's data beyond the client credential.
		secret map[string]string
		// headers are those of an event posted as the docs say.
		headers func(t *testing.T, emu *emulator.Emulator, cs *v1alpha1.CapillarySource) map[string]string
		// rotate changes the Secret; rotated says the base connection holds the change.
		rotate  func(t *testing.T, emu *emulator.Emulator, s *corev1.Secret)
		rotated func(params map[string]any) bool
	}{
		{
			variant: emulator.ConnectionAuthOAuth2,
			inlet:   v1alpha1.InletAuthenticationOAuth2,
			headers: func(t *testing.T, emu *emulator.Emulator, cs *v1alpha1.CapillarySource) map[string]string {
				return map[string]string{
					"Authorization":   "Bearer " + imsToken(t, emu, clientID, clientSecret),
					"x-api-key":       clientID,
					"x-gw-ims-org-id": cs.Spec.OrgID,
					"x-sandbox-name":  cs.Spec.SandboxName,
				}
			},
			rotate: func(t *testing.T, emu *emulator.Emulator, s *corev1.Secret) {
				emu.AddCredential(clientID, rotatedClientSecret) // the Developer Console's second secret
				s.Data["clientSecret"] = []byte(rotatedClientSecret)
			},
			rotated: func(p map[string]any) bool { return p["clientSecret"] == rotatedClientSecret },
		},
		{
			variant: emulator.ConnectionAuthHMAC,
			inlet:   v1alpha1.InletAuthenticationHMAC,
			secret:  map[string]string{"sharedSecret": hmacSecret},
			headers: func(t *testing.T, emu *emulator.Emulator, cs *v1alpha1.CapillarySource) map[string]string {
				return map[string]string{"x-hmac-sha256": sign(hmacSecret, event)}
			},
			rotate: func(t *testing.T, emu *emulator.Emulator, s *corev1.Secret) {
				s.Data["sharedSecret"] = []byte(hmacSecretRotated)
			},
			rotated: func(p map[string]any) bool { return p["sharedSecret"] == hmacSecretRotated },
		},
	}
	for _, tc := range cases {
		t.Run(string(tc.variant), func(t *testing.T) {
			emu := authEmulator(t, tc.variant)
			// Lost create answers on every create: found by name, never made twice.
			if err := emu.SetFaults(emulator.Faults{Seed: 3, RateLostResponse: 1, Operations: []string{
				emulator.OpConnectionsCreate, emulator.OpSourceConnectionsCreate,
			}}); err != nil {
				t.Fatal(err)
			}
			ns := newNamespace(t)
			editSecret(t, ns, setKeys(tc.secret))
			cs := localenvtest.NewSource(ns, "auth")
			suite.Create(t, cs)
			got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
			if err := emu.SetFaults(emulator.Faults{}); err != nil {
				t.Fatal(err)
			}

			if got.Status.InletAuthentication != tc.inlet {
				t.Errorf("inletAuthentication = %q, want %q", got.Status.InletAuthentication, tc.inlet)
			}
			bases := connectionsOf(emu, emulator.KindConnection, got)
			if len(bases) != 1 || bases[0].ID != got.Status.BaseConnectionID {
				t.Fatalf("%d base connections in Adobe, status names %q: want exactly that one", len(bases), got.Status.BaseConnectionID)
			}
			if n := len(connectionsOf(emu, emulator.KindSourceConnection, got)); n != 1 {
				t.Errorf("%d source connections, want 1", n)
			}
			if emu.Calls().OpStatus(emulator.OpConnectionsCreate, 500) == 0 {
				t.Error("no lost answer was injected on the base connection's create")
			}

			// An event posted as the docs say gets in; without its proof, it does not.
			hdr := tc.headers(t, emu, got)
			hdr["x-adobe-flow-id"] = got.Status.DataflowID
			if code := post(t, got.Status.InletURL, hdr, event); code != http.StatusOK {
				t.Errorf("event posted as documented: HTTP %d, want 200", code)
			}
			if code := post(t, got.Status.InletURL, map[string]string{"x-adobe-flow-id": got.Status.DataflowID}, event); code != http.StatusUnauthorized {
				t.Errorf("event without authentication: HTTP %d, want 401", code)
			}

			// Rotation: the Secret changes, the base connection follows.
			editSecret(t, ns, func(s *corev1.Secret) { tc.rotate(t, emu, s) })
			if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
				p, ok := emu.ConnectionParams(got.Status.BaseConnectionID)
				return ok && tc.rotated(p), nil
			}); err != nil {
				t.Fatalf("the base connection never took the rotated Secret: %v", err)
			}
			// Patched, not made anew (other runs' resources may be reconciled
			// by this operator too: count this resource's objects).
			if bases := connectionsOf(emu, emulator.KindConnection, got); len(bases) != 1 || bases[0].ID != got.Status.BaseConnectionID {
				t.Errorf("%d base connections after the rotation, want the one of status (%s): rotation must patch, not create", len(bases), got.Status.BaseConnectionID)
			}
			if tc.variant == emulator.ConnectionAuthHMAC {
				if code := post(t, got.Status.InletURL, map[string]string{"x-adobe-flow-id": got.Status.DataflowID, "x-hmac-sha256": sign(hmacSecretRotated, event)}, event); code != http.StatusOK {
					t.Errorf("event signed with the rotated secret: HTTP %d, want 200", code)
				}
				if code := post(t, got.Status.InletURL, hdr, event); code != http.StatusUnauthorized {
					t.Errorf("event signed with the old secret: HTTP %d, want 401", code)
				}
			}

			// Delete: flow, then the connections, the base connection last.
			if err := suite.Env.Client.Delete(context.Background(), got); err != nil {
				t.Fatal(err)
			}
			suite.WaitGone(t, got)
			for _, kind := range []emulator.Kind{emulator.KindFlow, emulator.KindSourceConnection, emulator.KindTargetConnection, emulator.KindConnection} {
				if n := len(connectionsOf(emu, kind, got)); n != 0 {
					t.Errorf("%d %s left in Adobe after the delete", n, kind)
				}
			}
		})
	}
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// Bad input for an authenticated source: a clear reason and message, nothing
// sent to Adobe (no create, no marker), no hot loop, and recovery when fixed.
func TestAuthenticatedBadInput(t *testing.T) {
	cases := []struct {
		name       string
		secret     map[string]string
		wantReason string
		wantIn     []string
		fix        map[string]string
	}{
		{name: "the Secret lacks the shared secret", wantReason: v1alpha1.ReasonSecretKeyMissing,
			wantIn: []string{"sharedSecret", "authParamKeys"}, fix: map[string]string{"sharedSecret": hmacSecret}},
		{name: "the shared secret is too short", secret: map[string]string{"sharedSecret": "short"}, wantReason: v1alpha1.ReasonAuthParamsInvalid,
			wantIn: []string{"sharedSecret", "minLength"}, fix: map[string]string{"sharedSecret": hmacSecret}},
	}
	emu := authEmulator(t, emulator.ConnectionAuthHMAC)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			editSecret(t, ns, setKeys(tc.secret))
			cs := localenvtest.NewSource(ns, "bad-auth-"+string(rune('a'+i)))
			suite.Create(t, cs)
			got := suite.WaitFor(t, cs, tc.wantReason, localenvtest.ReasonIs(v1alpha1.ConditionStalled, tc.wantReason))
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionBaseConnectionReady)
			if c == nil || c.Reason != tc.wantReason {
				t.Fatalf("BaseConnectionReady = %+v, want reason %s", c, tc.wantReason)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(c.Message, w) {
					t.Errorf("message %q does not name %q", c.Message, w)
				}
			}
			if got.Status.CreateStartedAt != nil || len(connectionsOf(emu, emulator.KindConnection, got)) != 0 {
				t.Error("something was created, or marked as created, for params that never passed")
			}
			// Stalled: the next attempt waits for a change (the stalled-retry
			// interval is the default 15m here); a manual trigger is handled
			// once, with the same verdict, and no base connection create.
			requestReconcile(t, got, "check-"+tc.name[:3])
			checked := suite.WaitFor(t, cs, "trigger handled", func(cs *v1alpha1.CapillarySource) bool {
				return cs.Status.LastHandledReconcileAt == "check-"+tc.name[:3]
			})
			if !isStalledWith(checked, tc.wantReason) || len(connectionsOf(emu, emulator.KindConnection, checked)) != 0 {
				t.Errorf("after a second look: %v, %d base connections; want the same stall and none", checked.Status.Conditions, len(connectionsOf(emu, emulator.KindConnection, checked)))
			}

			editSecret(t, ns, setKeys(tc.fix))
			suite.WaitFor(t, cs, "Ready after the fix", localenvtest.IsReady)
			if err := suite.Env.Client.Delete(context.Background(), cs); err != nil {
				t.Fatal(err)
			}
			suite.WaitGone(t, cs)
		})
	}
}

// Dataflow options are sent on create and changed in place.
func TestDataflowOptions(t *testing.T) {
	startOperator(t, fastRetries)
	ns := newNamespace(t)
	pct := func(v int32) *int32 { return &v }
	cs := localenvtest.NewSource(ns, "options", func(cs *v1alpha1.CapillarySource) {
		cs.Spec.Dataflow = &v1alpha1.DataflowOptions{ErrorDiagnosticsEnabled: true, PartialIngestionPercent: pct(10)}
	})
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	flowOptions := func() (any, any) {
		flows := objectsOf(emulator.KindFlow, got)
		if len(flows) != 1 {
			t.Fatalf("%d flows, want 1", len(flows))
		}
		return flows[0].Field("options.errorDiagnosticsEnabled"), flows[0].Field("options.partialIngestionPercent")
	}
	if diag, p := flowOptions(); diag != true || p != float64(10) {
		t.Fatalf("flow options errorDiagnosticsEnabled=%v partialIngestionPercent=%v, want true and 10", diag, p)
	}
	flowID := got.Status.DataflowID

	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) {
		c.Spec.Dataflow = &v1alpha1.DataflowOptions{ErrorDiagnosticsEnabled: false}
	})
	got = suite.WaitFor(t, cs, "Ready with the new options", func(c *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(c) && c.Status.ObservedGeneration == c.Generation
	})
	if diag, p := flowOptions(); diag != false || p != nil {
		t.Errorf("flow options errorDiagnosticsEnabled=%v partialIngestionPercent=%v after the change, want false and absent", diag, p)
	}
	if got.Status.DataflowID != flowID {
		t.Errorf("dataflow %s replaced by %s: options are changed in place", flowID, got.Status.DataflowID)
	}
}

func isStalledWith(cs *v1alpha1.CapillarySource, reason string) bool {
	c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionStalled)
	return c != nil && c.Status == "True" && c.Reason == reason
}
