package deploy_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/go-cmp/cmp"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

// argoStatuses are the health statuses Argo CD knows.
var argoStatuses = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true}

// healthScript is docs/argocd/health.lua, the check users install.
func healthScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, "docs", "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type verdict struct{ Status, Message string }

// argoHealth runs the script as Argo CD does: gopher-lua with the safe
// standard libraries, the object as the global obj, the returned table read
// as {status, message}.
func argoHealth(t *testing.T, script string, obj map[string]any) verdict {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatalf("health.lua failed: %v", err)
	}
	tbl, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, want a table", L.Get(-1).Type())
	}
	v := verdict{Status: lua.LVAsString(tbl.RawGetString("status")), Message: lua.LVAsString(tbl.RawGetString("message"))}
	if !argoStatuses[v.Status] {
		t.Fatalf("health.lua returned status %q, which Argo CD does not know", v.Status)
	}
	return v
}

// toLua converts decoded JSON as Argo CD's Lua VM does: objects and arrays
// become tables (arrays 1-based), numbers Lua numbers.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	}
	panic(fmt.Sprintf("toLua: unexpected %T", v))
}

// asObject is the resource as Argo CD sees it: JSON with apiVersion and kind.
func asObject(t *testing.T, cs *v1alpha1.CapillarySource) map[string]any {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cs.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("CapillarySource"))
	return u.Object
}

// kstatusAgrees: the Lua verdict and Flux's kstatus read the same object the
// same way (Suspended is Current to kstatus: the suspension is in effect).
func kstatusAgrees(t *testing.T, obj map[string]any, v verdict) {
	t.Helper()
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatalf("kstatus: %v", err)
	}
	want := map[string][]status.Status{
		"Healthy":     {status.CurrentStatus},
		"Suspended":   {status.CurrentStatus},
		"Progressing": {status.InProgressStatus, status.TerminatingStatus},
		"Degraded":    {status.FailedStatus},
	}[v.Status]
	for _, s := range want {
		if res.Status == s {
			return
		}
	}
	t.Errorf("Argo CD says %s, kstatus says %s (%s)", v.Status, res.Status, res.Message)
}

// TestArgoCDHealthCheck runs docs/argocd/health.lua on CapillarySources from
// real reconciles: the operator against the emulator, brought to each state
// the check must tell apart.
func TestArgoCDHealthCheck(t *testing.T) {
	needEnv(t)
	script := healthScript(t)
	ctx := context.Background()
	o := env.ManagerOptions()
	o.ResyncInterval = time.Hour
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	o.AdobeMaxAttempts = 1 // a 503 shows as a retry at once
	mgr, err := env.StartManager(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := mgr.Stop(); err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	}()
	defer func() { _ = env.Emulator.SetFaults(emulator.Faults{}) }()

	ns := localenvtest.NewNamespace(t, env.Client, "health")
	const wrongSecret = "not-the-right-secret-9d1f"
	for name, secret := range map[string]string{"good": clientSecret, "wrong": wrongSecret} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{"clientId": clientID, "clientSecret": secret}}
		if err := env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	flux := fluxExprs(t)
	check := func(t *testing.T, cs *v1alpha1.CapillarySource, want string) {
		t.Helper()
		obj := asObject(t, cs)
		v := argoHealth(t, script, obj)
		if cs.DeletionTimestamp == nil {
			if got, wantFlux := flux.evaluate(t, obj), fluxStatus[want]; got != wantFlux {
				t.Errorf("%s: Flux healthCheckExprs say %s, want %s", cs.Name, got, wantFlux)
			}
		}
		if v.Status != want {
			t.Errorf("%s: health %s (%q), want %s; status: %+v", cs.Name, v.Status, v.Message, want, cs.Status)
		}
		for _, s := range []string{clientSecret, wrongSecret} {
			if strings.Contains(v.Message, s) {
				t.Errorf("%s: the health message shows a client secret", cs.Name)
			}
		}
		kstatusAgrees(t, obj, v)
	}

	t.Run("fresh, then Ready", func(t *testing.T) {
		cs := newSource(ns, "good", "good")
		if err := env.Client.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		// What the apiserver answered: the resource before the operator saw it.
		check(t, cs, "Progressing")
		ready := waitFor(t, cs, "Ready", isReady)
		check(t, ready, "Healthy")
	})

	t.Run("suspended", func(t *testing.T) {
		cs := get(t, ns, "good")
		cs.Spec.Suspend = true
		if err := env.Client.Update(ctx, cs); err != nil {
			t.Fatal(err)
		}
		// Ready=True is about the previous generation: not yet suspended.
		check(t, cs, "Progressing")
		suspended := waitFor(t, cs, "suspended", func(cs *v1alpha1.CapillarySource) bool {
			return isReady(cs) && readyReason(cs) == v1alpha1.ReasonSuspended
		})
		check(t, suspended, "Suspended")
	})

	t.Run("wrong client secret", func(t *testing.T) {
		cs := newSource(ns, "wrong", "wrong")
		if err := env.Client.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		stalled := waitFor(t, cs, "Stalled", func(cs *v1alpha1.CapillarySource) bool {
			return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionStalled)
		})
		if r := readyReason(stalled); r != v1alpha1.ReasonInvalidCredentials {
			t.Errorf("Ready reason %s, want %s", r, v1alpha1.ReasonInvalidCredentials)
		}
		check(t, stalled, "Degraded")
	})

	t.Run("Adobe unavailable, then recovered", func(t *testing.T) {
		if err := env.Emulator.SetFaults(emulator.Faults{Rate503: 1, Operations: []string{emulator.OpFlowsCreate}}); err != nil {
			t.Fatal(err)
		}
		cs := newSource(ns, "flaky", "good")
		if err := env.Client.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		retrying := waitFor(t, cs, "retrying", func(cs *v1alpha1.CapillarySource) bool {
			c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReconciling)
			return c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonProgressingWithRetry
		})
		check(t, retrying, "Progressing")
		if err := env.Emulator.SetFaults(emulator.Faults{}); err != nil {
			t.Fatal(err)
		}
		requestReconcile(t, retrying)
		check(t, waitFor(t, cs, "Ready", isReady), "Healthy")
	})

	t.Run("deleting", func(t *testing.T) {
		if err := env.Emulator.SetFaults(emulator.Faults{Rate503: 1, Operations: []string{emulator.OpFlowsDelete}}); err != nil {
			t.Fatal(err)
		}
		cs := get(t, ns, "flaky")
		if err := env.Client.Delete(ctx, cs); err != nil {
			t.Fatal(err)
		}
		deleting := waitFor(t, cs, "deleting", func(cs *v1alpha1.CapillarySource) bool { return cs.DeletionTimestamp != nil })
		check(t, deleting, "Progressing")
		if err := env.Emulator.SetFaults(emulator.Faults{}); err != nil {
			t.Fatal(err)
		}
		requestReconcile(t, deleting)
		waitGone(t, deleting)
	})
}

// fluxStatus is the kstatus verdict that goes with each Argo CD health.
var fluxStatus = map[string]string{"Healthy": "Current", "Suspended": "Current", "Progressing": "InProgress", "Degraded": "Failed"}

// fluxHealthExprs are the healthCheckExprs of docs/gitops.md, compiled.
type fluxHealthExprs struct{ inProgress, failed, current cel.Program }

func fluxExprs(t *testing.T) fluxHealthExprs {
	t.Helper()
	doc := readFile(t, repoPath(t, "docs", "gitops.md"))
	env, err := cel.NewEnv(cel.OptionalTypes(),
		cel.Variable("metadata", cel.DynType), cel.Variable("spec", cel.DynType), cel.Variable("status", cel.DynType),
		cel.Variable("apiVersion", cel.StringType), cel.Variable("kind", cel.StringType))
	if err != nil {
		t.Fatal(err)
	}
	compile := func(key string) cel.Program {
		m := regexp.MustCompile(`(?m)^\s+` + key + `: (.+)$`).FindStringSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/gitops.md has no %s expression", key)
		}
		ast, iss := env.Compile(m[1])
		if iss.Err() != nil {
			t.Fatalf("%s: %v", key, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		return prg
	}
	return fluxHealthExprs{inProgress: compile("inProgress"), failed: compile("failed"), current: compile("current")}
}

// evaluate gives the verdict as kustomize-controller does: inProgress, then
// failed, then current; none true means still in progress.
func (f fluxHealthExprs) evaluate(t *testing.T, obj map[string]any) string {
	t.Helper()
	vars := map[string]any{"metadata": obj["metadata"], "spec": obj["spec"], "status": obj["status"], "apiVersion": obj["apiVersion"], "kind": obj["kind"]}
	if vars["status"] == nil {
		vars["status"] = map[string]any{}
	}
	for _, e := range []struct {
		prg    cel.Program
		status string
	}{{f.inProgress, "InProgress"}, {f.failed, "Failed"}, {f.current, "Current"}} {
		out, _, err := e.prg.Eval(vars)
		if err != nil {
			t.Fatalf("evaluate %s expression: %v", e.status, err)
		}
		if out == types.True {
			return e.status
		}
	}
	return "InProgress"
}

// TestArgoCDHealthCheckEdges covers states that are hard to catch in a live
// run, on hand-made objects.
func TestArgoCDHealthCheckEdges(t *testing.T) {
	script := healthScript(t)
	cond := func(typ, st, reason string) any {
		return map[string]any{"type": typ, "status": st, "reason": reason, "message": "m"}
	}
	obj := func(gen int64, observed any, suspend bool, conds ...any) map[string]any {
		o := map[string]any{
			"apiVersion": "sources.aepoperator.dev/v1alpha1", "kind": "CapillarySource",
			"metadata": map[string]any{"name": "s", "namespace": "n", "generation": gen},
			"spec":     map[string]any{"suspend": suspend},
		}
		st := map[string]any{"conditions": conds}
		if observed != nil {
			st["observedGeneration"] = observed
		}
		o["status"] = st
		return o
	}
	deleting := func(o map[string]any) map[string]any {
		o["metadata"].(map[string]any)["deletionTimestamp"] = "2026-01-01T00:00:00Z"
		return o
	}
	tests := []struct {
		name string
		obj  map[string]any
		want string
	}{
		{"no status", map[string]any{"metadata": map[string]any{"name": "s", "generation": int64(1)}}, "Progressing"},
		{"no metadata generation", map[string]any{"metadata": map[string]any{}, "status": map[string]any{"conditions": []any{cond("Ready", "True", "Succeeded")}}}, "Healthy"},
		{"stalled on an older generation", obj(2, int64(1), false, cond("Stalled", "True", "InvalidCredentials"), cond("Ready", "False", "InvalidCredentials")), "Progressing"},
		{"stalled", obj(2, int64(2), false, cond("Stalled", "True", "InvalidCredentials"), cond("Ready", "False", "InvalidCredentials")), "Degraded"},
		{"reconciling wins over an old Ready", obj(3, int64(3), false, cond("Reconciling", "True", "Progressing"), cond("Ready", "True", "Succeeded")), "Progressing"},
		{"ready false alone", obj(1, int64(1), false, cond("Ready", "False", "DeleteBlocked")), "Degraded"},
		{"ready unknown", obj(1, int64(1), false, cond("Ready", "Unknown", "Progressing")), "Progressing"},
		{"suspend requested, not yet done", obj(2, int64(1), true, cond("Ready", "True", "Succeeded")), "Progressing"},
		{"suspended", obj(2, int64(2), true, cond("Ready", "True", "Suspended")), "Suspended"},
		{"stalled while suspended", obj(2, int64(2), true, cond("Stalled", "True", "NotEntitled"), cond("Ready", "False", "NotEntitled")), "Degraded"},
		{"observedGeneration -1", obj(1, int64(-1), false), "Progressing"},
		{"deleting", deleting(obj(1, int64(1), false, cond("Ready", "True", "Succeeded"))), "Progressing"},
		{"deletion blocked", deleting(obj(1, int64(1), false, cond("Stalled", "True", "DeleteBlocked"), cond("Ready", "False", "DeleteBlocked"))), "Degraded"},
		// Ingestion health does not make a Ready source look degraded
		// (docs/gitops.md says how to opt in); the inlet's warm-up is progress.
		{"ready, records failing", obj(1, int64(1), false, cond("Ready", "True", "Succeeded"), cond("IngestionHealthy", "False", "RecordsFailing")), "Healthy"},
		{"ready, no runs yet", obj(1, int64(1), false, cond("Ready", "True", "Succeeded"), cond("IngestionHealthy", "Unknown", "NoRunsYet")), "Healthy"},
		{"inlet warming up", obj(1, int64(1), false, cond("Reconciling", "True", "InletWarmingUp"), cond("Ready", "False", "InletWarmingUp")), "Progressing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := argoHealth(t, script, tt.obj); got.Status != tt.want {
				t.Errorf("health %s (%q), want %s", got.Status, got.Message, tt.want)
			}
		})
	}
}

// TestArgoCDHealthCheckInDocs: the script in docs/gitops.md and in the
// argocd-cm patch is the tested file, word for word.
func TestArgoCDHealthCheckInDocs(t *testing.T) {
	script := healthScript(t)
	doc, err := os.ReadFile(repoPath(t, "docs", "gitops.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```lua\n"+script+"```") {
		t.Error("docs/gitops.md does not show docs/argocd/health.lua verbatim in a ```lua block")
	}
	objs, err := decodeYAML(readFile(t, repoPath(t, "docs", "argocd", "argocd-cm.yaml")))
	if err != nil || len(objs) != 1 {
		t.Fatalf("docs/argocd/argocd-cm.yaml: %d objects, %v", len(objs), err)
	}
	got, _, _ := unstructured.NestedString(objs[0].Object, "data", "resource.customizations.health.sources.aepoperator.dev_CapillarySource")
	if diff := cmp.Diff(script, got); diff != "" {
		t.Errorf("argocd-cm.yaml's health check differs from health.lua (-file +configmap):\n%s", diff)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newSource(ns, name, secret string) *v1alpha1.CapillarySource {
	return &v1alpha1.CapillarySource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.CapillarySourceSpec{
			CredentialsSecretRef: v1alpha1.CredentialsSecretReference{Name: secret},
			OrgID:                "0A7D42FC5DB9D3360A495FD3@AdobeOrg",
			Target: v1alpha1.Target{
				DatasetID: "6889f4f89b982b2b90bc1207",
				SchemaID:  "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168",
			},
			Mappings: []v1alpha1.Mapping{{SourceAttribute: "loyalty.points", DestinationXdmPath: "loyalty.points"}},
		},
	}
}

func get(t *testing.T, ns, name string) *v1alpha1.CapillarySource {
	t.Helper()
	cs := &v1alpha1.CapillarySource{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// waitTimeout bounds waitFor and waitGone.
const waitTimeout = 60 * time.Second

func waitFor(t *testing.T, cs *v1alpha1.CapillarySource, what string, cond func(*v1alpha1.CapillarySource) bool) *v1alpha1.CapillarySource {
	t.Helper()
	last := &v1alpha1.CapillarySource{}
	err := localenvtest.Poll(context.Background(), waitTimeout, func(ctx context.Context) (bool, error) {
		cur := &v1alpha1.CapillarySource{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cs), cur); err != nil {
			return false, nil // look again
		}
		last = cur
		return cond(cur), nil
	})
	if err != nil {
		t.Fatalf("%s never became %s within %s; last status: %+v", cs.Name, what, waitTimeout, last.Status)
	}
	return last
}

func waitGone(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	err := localenvtest.Poll(context.Background(), waitTimeout, func(ctx context.Context) (bool, error) {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(cs), &v1alpha1.CapillarySource{})), nil
	})
	if err != nil {
		t.Fatalf("%s was never deleted", cs.Name)
	}
}

func isReady(cs *v1alpha1.CapillarySource) bool {
	return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionReady) && cs.Status.ObservedGeneration == cs.Generation
}

func readyReason(cs *v1alpha1.CapillarySource) string {
	if c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// requestReconcile sets the manual trigger annotation, skipping the backoff.
func requestReconcile(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`,
		v1alpha1.ReconcileRequestAnnotation, time.Now().Format(time.RFC3339Nano))))
	if err := env.Client.Patch(context.Background(), cs.DeepCopy(), patch); err != nil {
		t.Fatal(err)
	}
}
