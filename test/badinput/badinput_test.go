// Package badinput_test feeds the operator bad input, table-driven: broken
// Secrets, refused credentials and permissions, things Adobe will not accept,
// answers that make no sense, and every CRD validation rule at apply time.
// For each runtime case it checks the condition reason and message the user
// sees, that the operator does not hot-loop (calls over a window are
// bounded), that nothing is lost or duplicated, and that fixing the cause
// (without touching the resource where that makes sense) brings it to Ready.
package badinput_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/leakcheck"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

// quietWindow is how long, at least, a failing resource is watched for a
// hot loop. The window is measured on the proxy's clock (when the calls
// arrived), not assumed from a sleep.
const quietWindow = 5 * time.Second

// The operator's backoff after a transient failure (production defaults):
// the n-th failed pass in a row is followed by base·2^(n-1), jittered by
// ±backoffJitter (controllers' retryJitter), before the next pass starts.
var backoffBase = manager.Defaults().RetryBaseDelay

const backoffJitter = 0.2

// maxPasses bounds the failed passes that can end within a window of w.
// Passes start at least base·(1−jitter)·2^(n−1) apart, the smallest gaps
// first, so m passes starting in the window need
// base·(1−jitter)·(2^(m−1) − 1) ≤ w; one more may have been under way when
// the window opened.
func maxPasses(w time.Duration) int {
	least := float64(backoffBase) * (1 - backoffJitter)
	return 2 + int(math.Floor(math.Log2(float64(w)/least+1)))
}

// want is what the user sees on the failing resource.
type want struct {
	// condition is the step condition that fails (CredentialsReady, ...).
	condition string
	reason    string
	// terminal: Stalled, waiting for a change; otherwise Reconciling,
	// retrying with backoff.
	terminal bool
	// mentions are what the message must name for the user to act.
	mentions []string
}

type badCase struct {
	name string
	want want
	// arrange sets the case up and creates c.cs.
	arrange func(c *tcase)
	// perPass is the most Adobe calls one failing pass makes (each call's
	// own retries included). Zero: no pass is due within the window (a
	// terminal failure waits for a change; an hour's Retry-After), so the
	// window must be quiet.
	perPass int
	// check runs after the window, for case-specific properties.
	check func(c *tcase)
	// fix removes the cause; nil when it cannot be fixed in place (an
	// immutable field: the way out is a new resource).
	fix func(c *tcase)
	// deleteBlocked: with the cause still there, deleting the resource must
	// stop and say how to let it go (deletionPolicy: Orphan).
	deleteBlocked bool
}

func TestBadInput(t *testing.T) {
	unknownSpec := fmt.Sprintf("%08x-0000-4000-8000-%012x", rand.Uint32(), rand.Uint64()&0xffffffffffff)
	cases := []badCase{
		{
			name: "missing Secret",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretNotFound, true, []string{"/adobe", "clientId", "clientSecret"}},
			arrange: func(c *tcase) {
				c.create()
			},
			fix: func(c *tcase) { c.createSecret(c.goodSecret()) },
		},
		{
			name: "Secret without the client secret key",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretKeyMissing, true, []string{"/adobe", "clientSecret"}},
			arrange: func(c *tcase) {
				c.createSecret(map[string]string{"clientId": c.clientID})
				c.create()
			},
			fix: func(c *tcase) { c.updateSecret(c.goodSecret()) },
		},
		{
			name: "Secret with custom keys that are not there",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretKeyMissing, true, []string{"/adobe", "adobe-client-id"}},
			arrange: func(c *tcase) {
				c.createSecret(c.goodSecret())
				c.create(func(cs *v1alpha1.CapillarySource) {
					cs.Spec.CredentialsSecretRef.ClientIDKey = "adobe-client-id"
					cs.Spec.CredentialsSecretRef.ClientSecretKey = "adobe-client-secret"
				})
			},
			fix: func(c *tcase) {
				c.updateSecret(map[string]string{"adobe-client-id": c.clientID, "adobe-client-secret": c.secret})
			},
		},
		{
			name: "empty values",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretKeyMissing, true, []string{"/adobe", "empty", "clientId"}},
			arrange: func(c *tcase) {
				c.createSecret(map[string]string{"clientId": "", "clientSecret": " \n"})
				c.create()
			},
			fix: func(c *tcase) { c.updateSecret(c.goodSecret()) },
		},
		{
			name: "wrong client secret (IMS invalid_client)",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonInvalidCredentials, true, []string{"invalid_client", "clientSecret"}},
			arrange: func(c *tcase) {
				wrong := "wrong-" + c.secret
				rec.AddSecret(leakcheck.KindClientSecret, wrong)
				c.createSecret(map[string]string{"clientId": c.clientID, "clientSecret": wrong})
				c.create()
			},
			fix: func(c *tcase) { c.updateSecret(c.goodSecret()) },
		},
		{
			name: "org not entitled (403)",
			want: want{v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonNotEntitled, true, []string{"2118-403", "read the connection spec"}},
			arrange: func(c *tcase) {
				c.org = unentitledOrg
				c.createSecret(c.goodSecret())
				c.create()
			},
			// Every call was refused, so nothing was ever created: the
			// resource goes without asking Adobe (issue 11, defect 5).
			deleteBlocked: false,
		},
		{
			name: "unknown connection spec (404)",
			want: want{v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonConnectionSpecNotFound, true, []string{unknownSpec, "spec.connectionSpecId"}},
			arrange: func(c *tcase) {
				c.createSecret(c.goodSecret())
				c.create(func(cs *v1alpha1.CapillarySource) { cs.Spec.ConnectionSpecID = unknownSpec })
			},
		},
		{
			name: "dataset refused by Adobe",
			want: want{v1alpha1.ConditionTargetConnectionReady, v1alpha1.ReasonTargetRejected, true, []string{refusedDataset, "spec.target.datasetId"}},
			arrange: func(c *tcase) {
				c.createSecret(c.goodSecret())
				c.create(func(cs *v1alpha1.CapillarySource) { cs.Spec.Target.DatasetID = refusedDataset })
			},
			check: func(c *tcase) {
				// The source connection made before the refusal is on record,
				// so deleting the resource removes it (checked on delete).
				got := suite.Get(c.t, c.cs)
				if n := len(c.objects(emulator.KindSourceConnection)); n != 1 || got.Status.SourceConnectionID == "" {
					c.t.Errorf("%d source connections in Adobe, status names %q; want the one made before the refusal, on record", n, got.Status.SourceConnectionID)
				}
			},
		},
		{
			name: "invalid mapping refused by Data Prep",
			want: want{v1alpha1.ConditionMappingReady, v1alpha1.ReasonMappingRejected, true, []string{refusedXDMPath, "spec.mappings"}},
			arrange: func(c *tcase) {
				c.createSecret(c.goodSecret())
				c.create(func(cs *v1alpha1.CapillarySource) {
					cs.Spec.Mappings = append(cs.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: "tier", DestinationXdmPath: refusedXDMPath})
				})
			},
			// Mappings are mutable: the fix is the spec itself.
			fix: func(c *tcase) {
				suite.Update(c.t, c.cs, func(cs *v1alpha1.CapillarySource) { cs.Spec.Mappings = cs.Spec.Mappings[:len(cs.Spec.Mappings)-1] })
			},
		},
		{
			name: "etag conflict storm (412 on every PATCH)",
			want: want{v1alpha1.ConditionDataflowReady, v1alpha1.ReasonAdobeUnavailable, false, []string{"update the dataflow"}},
			arrange: func(c *tcase) {
				c.createSecret(c.goodSecret())
				c.create()
				got := suite.WaitFor(c.t, c.cs, "Ready", localenvtest.IsReady)
				flowID := got.Status.DataflowID
				// Someone renames the dataflow in Adobe's UI, and keeps
				// editing it: every PATCH the operator sends finds a newer etag.
				suite.Env.Emulator.Modify(emulator.KindFlow, flowID, func(doc map[string]any) { doc["name"] = "renamed in the UI" })
				var edits atomic.Int64
				adobe.setRule(c.clientID, func(w http.ResponseWriter, r *http.Request, op string) bool {
					if op == emulator.OpFlowsPatch {
						suite.Env.Emulator.Modify(emulator.KindFlow, flowID, func(doc map[string]any) {
							doc["description"] = fmt.Sprintf("edited in the UI (%d)", edits.Add(1))
						})
					}
					return false
				})
				c.requestReconcile("storm")
			},
			// Reads of the two connections and the mapping set, then three
			// tries of the dataflow: a read (for its etag) and a PATCH each.
			perPass: 9,
			check: func(c *tcase) {
				// Each pass re-reads and retries at most 3 times.
				patches, failures := adobe.count(c.clientID, emulator.OpFlowsPatch), int(suite.Get(c.t, c.cs).Status.Failures)
				if patches < 3 || patches > 3*(failures+1) {
					c.t.Errorf("%d PATCHes over %d failed passes, want 3 per pass", patches, failures)
				}
			},
			fix: func(c *tcase) { adobe.setRule(c.clientID, nil) },
		},
		{
			name: "Adobe answers garbage JSON",
			want: want{v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonAdobeUnavailable, false, []string{"unreadable", "read the connection spec"}},
			arrange: func(c *tcase) {
				garbage := []string{`{"items": [{"id": "6360f136-5980`, "\x00\xff\xfe binary", `{"items": "not a list"}`}
				var n atomic.Int64
				adobe.setRule(c.clientID, func(w http.ResponseWriter, r *http.Request, op string) bool {
					if op != emulator.OpConnectionSpecsGet {
						return false
					}
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusOK)
					_, _ = w.Write([]byte(garbage[int(n.Add(1))%len(garbage)]))
					return true
				})
				c.createSecret(c.goodSecret())
				c.create()
			},
			// The connection spec read, answered garbage (an answer that came
			// is not tried again; the token is cached).
			perPass: 1,
			fix:     func(c *tcase) { adobe.setRule(c.clientID, nil) },
		},
		{
			name: "Adobe answers an HTML error page",
			want: want{v1alpha1.ConditionDataflowReady, v1alpha1.ReasonAdobeUnavailable, false, []string{"create the dataflow", "502"}},
			arrange: func(c *tcase) {
				adobe.setRule(c.clientID, func(w http.ResponseWriter, r *http.Request, op string) bool {
					if op != emulator.OpFlowsCreate {
						return false
					}
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusBadGateway)
					_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>The proxy server received an invalid response from an upstream server.</p></body></html>"))
					return true
				})
				c.createSecret(c.goodSecret())
				c.create()
			},
			// Reads of the two connections and the mapping set, a lookup of
			// the dataflow by name (an earlier create may have committed), and
			// the create, answered once.
			perPass: 5,
			fix:     func(c *tcase) { adobe.setRule(c.clientID, nil) },
		},
		{
			name: "IMS answers an HTML page",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonAdobeUnavailable, false, []string{"IMS"}},
			arrange: func(c *tcase) {
				adobe.setRule(c.clientID, func(w http.ResponseWriter, r *http.Request, op string) bool {
					if op != emulator.OpIMSToken {
						return false
					}
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					_, _ = w.Write([]byte("<html><body><form>Sign in to Adobe</form></body></html>"))
					return true
				})
				c.createSecret(c.goodSecret())
				c.create()
			},
			// The token request, answered once.
			perPass: 1,
			fix:     func(c *tcase) { adobe.setRule(c.clientID, nil) },
		},
		{
			name: "ClusterAdobeCredential not found",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonClusterCredentialNotFound, true, []string{"ClusterAdobeCredential", "platform team"}},
			arrange: func(c *tcase) {
				c.create(c.sharedCredential())
			},
			fix: func(c *tcase) { c.createCredential(nil) },
		},
		{
			name: "namespace not allowed by the ClusterAdobeCredential",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonNamespaceNotAllowed, true, []string{"allowedNamespaces", "does not allow namespace bad-"}},
			arrange: func(c *tcase) {
				c.createCredential(func(cred *v1alpha1.ClusterAdobeCredential) {
					cred.Spec.AllowedNamespaces = &v1alpha1.AllowedNamespaces{Names: []string{c.ns + "-other"}}
				})
				c.create(c.sharedCredential())
			},
			fix: func(c *tcase) {
				c.updateCredential(func(cred *v1alpha1.ClusterAdobeCredential) {
					cred.Spec.AllowedNamespaces.Names = append(cred.Spec.AllowedNamespaces.Names, c.ns)
				})
			},
		},
		{
			name: "sandbox not allowed by the ClusterAdobeCredential",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSandboxNotAllowed, true, []string{"dev", "prod"}},
			arrange: func(c *tcase) {
				c.createCredential(func(cred *v1alpha1.ClusterAdobeCredential) { cred.Spec.AllowedSandboxes = []string{"dev"} })
				c.create(c.sharedCredential())
			},
			fix: func(c *tcase) {
				c.updateCredential(func(cred *v1alpha1.ClusterAdobeCredential) {
					cred.Spec.AllowedSandboxes = append(cred.Spec.AllowedSandboxes, "prod")
				})
			},
		},
		{
			name: "ClusterAdobeCredential of another org",
			want: want{v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonOrgNotAllowed, true, []string{"spec.orgId", "0A7D42FC5DB9D3360A495FD3@AdobeOrg"}},
			arrange: func(c *tcase) {
				c.createCredential(func(cred *v1alpha1.ClusterAdobeCredential) { cred.Spec.OrgID = "0A7D42FC5DB9D3360A495FD3@AdobeOrg" })
				c.create(c.sharedCredential())
			},
			fix: func(c *tcase) {
				c.updateCredential(func(cred *v1alpha1.ClusterAdobeCredential) { cred.Spec.OrgID = c.org })
			},
		},
		{
			name: "adoption refused by the ClusterAdobeCredential",
			want: want{v1alpha1.ConditionDataflowReady, v1alpha1.ReasonAdoptionRefused, true, []string{"spec.adoption", v1alpha1.AdoptDataflowAnnotation}},
			arrange: func(c *tcase) {
				c.createCredential(nil)
				c.create(c.sharedCredential(), func(cs *v1alpha1.CapillarySource) {
					cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: "0f6d4a52-7f0c-4c44-8d36-bd1e6a0c1b2e"}
				})
			},
			// The way out is the annotation, not the spec.
			fix: func(c *tcase) {
				suite.Update(c.t, c.cs, func(cs *v1alpha1.CapillarySource) { delete(cs.Annotations, v1alpha1.AdoptDataflowAnnotation) })
			},
		},
		{
			name: "connection details ConfigMap belongs to someone else",
			want: want{v1alpha1.ConditionReady, v1alpha1.ReasonConnectionDetailsConflict, true, []string{"app-config", "spec.writeConnectionDetailsTo.name"}},
			arrange: func(c *tcase) {
				theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "app-config"}, Data: map[string]string{"keep": "me"}}
				if err := suite.Env.Client.Create(context.Background(), theirs); err != nil {
					c.t.Fatal(err)
				}
				c.createSecret(c.goodSecret())
				c.create(func(cs *v1alpha1.CapillarySource) {
					cs.Spec.WriteConnectionDetailsTo = &v1alpha1.ConnectionDetailsReference{Name: "app-config"}
				})
			},
			check: func(c *tcase) {
				theirs := &corev1.ConfigMap{}
				if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: "app-config"}, theirs); err != nil || len(theirs.Data) != 1 || theirs.Data["keep"] != "me" {
					c.t.Errorf("someone else's ConfigMap was written: %v %v", theirs.Data, err)
				}
			},
			// Its owner moves it away; the documented trigger looks again
			// (an unlabelled ConfigMap is not watched).
			fix: func(c *tcase) {
				if err := suite.Env.Client.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "app-config"}}); err != nil {
					c.t.Fatal(err)
				}
				c.requestReconcile("configmap-moved")
			},
		},
		{
			name: "Retry-After of an hour",
			want: want{v1alpha1.ConditionDataflowReady, v1alpha1.ReasonAdobeUnavailable, false, []string{"create the dataflow"}},
			arrange: func(c *tcase) {
				adobe.setRule(c.clientID, func(w http.ResponseWriter, r *http.Request, op string) bool {
					if op != emulator.OpFlowsCreate {
						return false
					}
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("Retry-After", "3600")
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = w.Write([]byte(`{"type":"https://ns.adobe.com/aep/errors/FLOW-1103-503","title":"Service Unavailable","status":503}`))
					return true
				})
				c.createSecret(c.goodSecret())
				c.create()
			},
			// Without the Retry-After the backoff (2s±20%) would try again
			// within the window: no call at all means the hour is honoured.
			perPass: 0,
			check: func(c *tcase) {
				if n := adobe.count(c.clientID, emulator.OpFlowsCreate); n != 1 {
					c.t.Errorf("%d dataflow creates, want the one answered with Retry-After", n)
				}
				if f := suite.Get(c.t, c.cs).Status.Failures; f != 1 {
					c.t.Errorf("status.failures = %d, want 1", f)
				}
			},
			// Nobody waits an hour in a test: once Adobe is back, the
			// documented manual trigger retries at once.
			fix: func(c *tcase) {
				adobe.setRule(c.clientID, nil)
				c.requestReconcile("adobe-is-back")
			},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCase(t)
			tc.arrange(c)
			got := suite.WaitFor(c.t, c.cs, tc.want.reason, func(cs *v1alpha1.CapillarySource) bool {
				r := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady)
				return r != nil && r.Status == metav1.ConditionFalse && r.Reason == tc.want.reason
			})
			checkSeen(t, got, tc.want)
			t.Logf("%s: %s", tc.want.reason, meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message)
			events := 0
			if tc.want.terminal {
				events = c.waitEvent(tc.want.reason)
			}

			now := c.watchWindow(tc, got, events)
			if tc.fix != nil {
				gen := now.Generation
				tc.fix(c)
				ready := suite.WaitFor(c.t, c.cs, "Ready", localenvtest.IsReady)
				c.assertOneOfEach(ready)
				if tc.name != "invalid mapping refused by Data Prep" && ready.Generation != gen {
					t.Errorf("the resource changed (generation %d → %d): recovery must not need the spec touched", gen, ready.Generation)
				}
			}
			c.deleteAndCheck(tc.deleteBlocked)
		})
	}
}

// watchWindow watches the failing resource for a hot loop, and returns it
// as it was at the window's end.
//
// A case with passes due (perPass > 0) is watched for quietWindow and until
// at least one more pass failed in the window: the operator acted. The
// passes are bounded by the backoff schedule over the measured window
// (maxPasses) and the calls by perPass for each pass that ended in it, plus
// the one under way at the end.
//
// A case with none due must be quiet: no call, and for a terminal failure
// no status write and no repeated event. Quiet proves nothing by itself, so
// the window is closed by a probe, a manual reconcile that must be handled,
// showing the operator was running and taking this resource's work; after
// it, the verdict and the events are still the same.
func (c *tcase) watchWindow(tc badCase, got *v1alpha1.CapillarySource, events int) *v1alpha1.CapillarySource {
	t := c.t
	t.Helper()
	from, f0 := time.Now(), got.Status.Failures
	if tc.perPass > 0 {
		localenvtest.WaitUntil(t, 2*time.Minute, "a failed pass in the window", func(context.Context) (bool, error) {
			return time.Since(from) >= quietWindow && suite.Get(t, c.cs).Status.Failures > f0, nil
		})
	} else {
		time.Sleep(quietWindow)
	}
	to := time.Now()
	now := suite.Get(t, c.cs)
	w, calls := to.Sub(from), adobe.countIn(c.clientID, from, to)
	if tc.perPass > 0 {
		passes := int(now.Status.Failures - f0)
		if most := maxPasses(w); passes > most {
			t.Errorf("%d failed passes in %s, the backoff allows at most %d", passes, w.Round(time.Millisecond), most)
		}
		if most := tc.perPass * (passes + 1); calls > most {
			t.Errorf("%d Adobe calls in %s over %d failed passes, want at most %d (%d a pass)", calls, w.Round(time.Millisecond), passes, most, tc.perPass)
		}
		t.Logf("%s: window %s: %d failed passes (at most %d), %d Adobe calls", tc.name, w.Round(time.Millisecond), passes, maxPasses(w), calls)
	} else {
		if calls != 0 {
			t.Errorf("%d Adobe calls in %s while no pass was due, want none", calls, w.Round(time.Millisecond))
		}
		if tc.want.terminal && now.ResourceVersion != got.ResourceVersion {
			t.Errorf("status kept changing while stalled: %+v", now.Status)
		}
	}
	if r := meta.FindStatusCondition(now.Status.Conditions, v1alpha1.ConditionReady); r == nil || r.Reason != tc.want.reason {
		t.Errorf("Ready condition changed while the cause stayed: %+v", r)
	}
	if tc.want.terminal {
		if n := c.countEvents(tc.want.reason); n != events {
			t.Errorf("%d %s events after the window, %d before: the warning repeats", n, tc.want.reason, events)
		}
	}
	if tc.check != nil {
		tc.check(c)
	}
	if tc.perPass == 0 {
		c.requestReconcile("probe")
		probed := suite.WaitFor(t, c.cs, "the probe handled", func(cs *v1alpha1.CapillarySource) bool {
			return cs.Status.LastHandledReconcileAt == "probe"
		})
		if r := meta.FindStatusCondition(probed.Status.Conditions, v1alpha1.ConditionReady); r == nil || r.Reason != tc.want.reason {
			t.Errorf("after a reconcile with the cause still there, Ready is %+v, want reason %s", r, tc.want.reason)
		}
		if tc.want.terminal {
			if n := c.countEvents(tc.want.reason); n != events {
				t.Errorf("%d %s events after a reconcile with the cause unchanged, %d before: the warning repeats", n, tc.want.reason, events)
			}
		}
		now = probed
	}
	return now
}

// checkSeen: the failing step, Ready and the kstatus conditions say the
// same thing, in words that name what to fix and no markup.
func checkSeen(t *testing.T, cs *v1alpha1.CapillarySource, w want) {
	t.Helper()
	conds := cs.Status.Conditions
	step := meta.FindStatusCondition(conds, w.condition)
	ready := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	if step == nil || step.Status != metav1.ConditionFalse || step.Reason != w.reason {
		t.Fatalf("condition %s = %+v, want False with reason %s", w.condition, step, w.reason)
	}
	if ready.Message != step.Message {
		t.Errorf("Ready says %q, %s says %q", ready.Message, w.condition, step.Message)
	}
	for _, m := range w.mentions {
		if !strings.Contains(step.Message, m) {
			t.Errorf("message %q does not mention %q", step.Message, m)
		}
	}
	if strings.ContainsAny(step.Message, "<>\x00") || len(step.Message) > 1024 {
		t.Errorf("message is not plain, short text: %q", step.Message)
	}
	stalled := meta.FindStatusCondition(conds, v1alpha1.ConditionStalled)
	reconciling := meta.FindStatusCondition(conds, v1alpha1.ConditionReconciling)
	if w.terminal {
		if stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != w.reason || reconciling != nil {
			t.Errorf("want Stalled=True (%s) and no Reconciling, got Stalled %+v, Reconciling %+v", w.reason, stalled, reconciling)
		}
		if cs.Status.ObservedGeneration != cs.Generation {
			t.Errorf("observedGeneration %d, generation %d: a stalled verdict is on this generation", cs.Status.ObservedGeneration, cs.Generation)
		}
	} else {
		if reconciling == nil || reconciling.Status != metav1.ConditionTrue || reconciling.Reason != v1alpha1.ReasonProgressingWithRetry || stalled != nil {
			t.Errorf("want Reconciling=True (%s) and no Stalled, got Reconciling %+v, Stalled %+v", v1alpha1.ReasonProgressingWithRetry, reconciling, stalled)
		}
		if cs.Status.Failures < 1 || cs.Status.LastFailureTime == nil {
			t.Errorf("failures %d, lastFailureTime %v: the backoff is not on record", cs.Status.Failures, cs.Status.LastFailureTime)
		}
	}
}

// tcase is one case's world: its namespace, credential and org, so cases
// run in parallel without sharing a token, a spec cache entry or a count.
type tcase struct {
	t        *testing.T
	ns       string
	clientID string
	secret   string
	org      string
	cs       *v1alpha1.CapillarySource
}

var serial atomic.Int64

func newCase(t *testing.T) *tcase {
	n := serial.Add(1)
	c := &tcase{
		t:        t,
		ns:       fmt.Sprintf("bad-%02d", n),
		clientID: fmt.Sprintf("bad-client-%02d", n),
		secret:   fmt.Sprintf("bad-secret-%02d-%016x", n, rand.Uint64()),
		org:      fmt.Sprintf("%024X@AdobeOrg", 0xBAD00000+n),
	}
	suite.Env.Emulator.AddCredential(c.clientID, c.secret)
	rec.AddSecret(leakcheck.KindClientSecret, c.secret)
	if err := suite.Env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adobe.setRule(c.clientID, nil) })
	return c
}

// sharedCredential is a create option: the source names the case's
// ClusterAdobeCredential instead of a Secret of its own.
func (c *tcase) sharedCredential() func(*v1alpha1.CapillarySource) {
	return func(cs *v1alpha1.CapillarySource) {
		cs.Spec.CredentialsSecretRef = v1alpha1.CredentialsSecretReference{}
		cs.Spec.ClusterCredentialRef = &v1alpha1.ClusterCredentialReference{Name: c.ns}
	}
}

// createCredential makes the case's ClusterAdobeCredential (named like its
// namespace, which it allows), with its Secret in the credentials namespace.
func (c *tcase) createCredential(mutate func(*v1alpha1.ClusterAdobeCredential)) {
	c.t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credentialsNamespace, Name: c.ns}, StringData: c.goodSecret()}
	if err := suite.Env.Client.Create(ctx, s); err != nil {
		c.t.Fatal(err)
	}
	cred := &v1alpha1.ClusterAdobeCredential{
		ObjectMeta: metav1.ObjectMeta{Name: c.ns},
		Spec: v1alpha1.ClusterAdobeCredentialSpec{
			SecretRef:         v1alpha1.CredentialsSecretReference{Name: c.ns, ClientIDKey: "clientId", ClientSecretKey: "clientSecret"},
			OrgID:             c.org,
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{c.ns}},
		},
	}
	if mutate != nil {
		mutate(cred)
	}
	if err := suite.Env.Client.Create(ctx, cred); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = suite.Env.Client.Delete(context.Background(), cred) })
	// The credential's own token check is done before the source exists, so
	// it is not counted against the source's quiet window.
	localenvtest.WaitUntil(c.t, suite.Timeout, "ClusterAdobeCredential "+cred.Name+" checked", func(ctx context.Context) (bool, error) {
		if err := suite.Env.Client.Get(ctx, client.ObjectKeyFromObject(cred), cred); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(cred.Status.Conditions, v1alpha1.ConditionReady), nil
	})
}

func (c *tcase) updateCredential(mutate func(*v1alpha1.ClusterAdobeCredential)) {
	c.t.Helper()
	cred := &v1alpha1.ClusterAdobeCredential{}
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Name: c.ns}, cred); err != nil {
		c.t.Fatal(err)
	}
	mutate(cred)
	if err := suite.Env.Client.Update(context.Background(), cred); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tcase) goodSecret() map[string]string {
	return map[string]string{"clientId": c.clientID, "clientSecret": c.secret}
}

func (c *tcase) createSecret(data map[string]string) {
	c.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "adobe"}, StringData: data}
	if err := suite.Env.Client.Create(context.Background(), s); err != nil {
		c.t.Fatal(err)
	}
}

// updateSecret replaces the Secret's data, as `kubectl apply` of a fixed
// Secret would.
func (c *tcase) updateSecret(data map[string]string) {
	c.t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{}
	if err := suite.Env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: "adobe"}, s); err != nil {
		c.t.Fatal(err)
	}
	s.Data = nil
	s.StringData = data
	if err := suite.Env.Client.Update(ctx, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tcase) create(mutate ...func(*v1alpha1.CapillarySource)) {
	c.t.Helper()
	org := func(cs *v1alpha1.CapillarySource) { cs.Spec.OrgID = c.org }
	cs := localenvtest.NewSource(c.ns, "loyalty", append([]func(*v1alpha1.CapillarySource){org}, mutate...)...)
	suite.Create(c.t, cs)
	c.cs = cs
}

func (c *tcase) requestReconcile(token string) {
	c.t.Helper()
	suite.Update(c.t, c.cs, func(cs *v1alpha1.CapillarySource) {
		if cs.Annotations == nil {
			cs.Annotations = map[string]string{}
		}
		cs.Annotations[v1alpha1.ReconcileRequestAnnotation] = token
	})
}

// countEvents counts the Warning events with reason about the resource,
// repeats (a series) included.
func (c *tcase) countEvents(reason string) int {
	c.t.Helper()
	var l eventsv1.EventList
	if err := suite.Env.Client.List(context.Background(), &l, client.InNamespace(c.ns)); err != nil {
		c.t.Fatal(err)
	}
	n := 0
	for _, e := range l.Items {
		if e.Reason == reason && e.Type == corev1.EventTypeWarning && e.Regarding.Name == c.cs.Name {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

// waitEvent waits for the Warning event a terminal failure records.
func (c *tcase) waitEvent(reason string) int {
	c.t.Helper()
	n := 0
	localenvtest.WaitUntil(c.t, 30*time.Second, "a Warning event with reason "+reason, func(context.Context) (bool, error) {
		n = c.countEvents(reason)
		return n > 0, nil
	})
	return n
}

func (c *tcase) objects(kind emulator.Kind) []emulator.Object {
	return ownership.NewIndex(suite.Env.Emulator.Objects()).Of(c.cs.UID, kind)
}

// assertOneOfEach: exactly one source connection, target connection and
// dataflow for the resource, the ones its status names.
func (c *tcase) assertOneOfEach(cs *v1alpha1.CapillarySource) {
	c.t.Helper()
	ids := map[emulator.Kind]string{
		emulator.KindSourceConnection: cs.Status.SourceConnectionID,
		emulator.KindTargetConnection: cs.Status.TargetConnectionID,
		emulator.KindFlow:             cs.Status.DataflowID,
	}
	for _, kind := range ownership.Kinds {
		objs := c.objects(kind)
		if len(objs) != 1 || objs[0].ID != ids[kind] {
			c.t.Errorf("%d %s in Adobe for the resource, status names %q: want exactly that one", len(objs), kind, ids[kind])
		}
	}
}

// deleteAndCheck deletes the resource and checks it leaves nothing in Adobe.
// When deletion is expected to be blocked, it checks the resource says so and
// lets it go with deletionPolicy: Orphan.
func (c *tcase) deleteAndCheck(blocked bool) {
	c.t.Helper()
	ctx := context.Background()
	if err := suite.Env.Client.Delete(ctx, c.cs); err != nil {
		c.t.Fatalf("delete: %v", err)
	}
	if blocked {
		got := suite.WaitFor(c.t, c.cs, v1alpha1.ReasonDeleteBlocked, func(cs *v1alpha1.CapillarySource) bool {
			return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionStalled) &&
				meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionStalled).Reason == v1alpha1.ReasonDeleteBlocked
		})
		msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message
		if !strings.Contains(msg, "deletionPolicy: Orphan") {
			c.t.Errorf("DeleteBlocked message %q does not give the way out", msg)
		}
		suite.Update(c.t, c.cs, func(cs *v1alpha1.CapillarySource) { cs.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
	}
	suite.WaitGone(c.t, c.cs)
	for _, kind := range ownership.Kinds {
		if n := len(c.objects(kind)); n != 0 {
			c.t.Errorf("%d %s left in Adobe after the resource was deleted", n, kind)
		}
	}
}
