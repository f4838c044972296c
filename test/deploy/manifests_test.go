package deploy_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aepoperator/capillary-operator/internal/manager"
)

// chartLikeDefault are the chart values that give config/default's objects.
var chartLikeDefault = map[string]any{"createNamespace": true}

// chartNamespaced watches two namespaces, with most switches flipped.
var chartNamespaced = map[string]any{
	"createNamespace":     true,
	"watchNamespaces":     []any{"team-a", "team-b"},
	"replicas":            1,
	"leaderElect":         false,
	"logLevel":            "debug",
	"resyncInterval":      "30m",
	"adobeQps":            2.5,
	"adobeBurst":          4,
	"imsUrl":              "https://ims-eu.example.com",
	"platformUrl":         "https://platform-eu.example.com",
	"extraArgs":           []any{"--adobe-timeout=45s"},
	"image":               map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)},
	"networkPolicy":       map[string]any{"enabled": false},
	"crds":                map[string]any{"keep": false},
	"podAnnotations":      map[string]any{"prometheus.io/scrape": "false"},
	"imagePullSecrets":    []any{map[string]any{"name": "registry"}},
	"priorityClassName":   "system-cluster-critical",
	"serviceAccount":      map[string]any{"annotations": map[string]any{"example.com/role": "operator"}},
	"metrics":             map[string]any{"service": map[string]any{"enabled": false}},
	"podDisruptionBudget": map[string]any{"enabled": true},
	"gogc":                "75",
}

// warnings collects the apiserver's warnings (deprecations, Pod Security).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

func dryRunClient(t *testing.T) (client.Client, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

// TestManifestsDryRun applies every rendered object to a Kubernetes 1.37
// apiserver with server-side dry run: the schema, the CRD's CEL rules and
// admission (Pod Security "restricted" on the operator's namespace) all have
// their say, and none may complain.
func TestManifestsDryRun(t *testing.T) {
	needEnv(t)
	tests := []struct {
		name string
		objs func(t *testing.T) []*unstructured.Unstructured
		// namespaces the objects need that they do not create.
		namespaces []string
	}{
		{name: "config/default", objs: func(t *testing.T) []*unstructured.Unstructured {
			return renderKustomize(t, repoPath(t, "config", "default"))
		}},
		// dist/release/install.yaml, as make release renders it.
		{name: "release install.yaml", objs: renderInstallYAML},
		{name: "chart like config/default", objs: func(t *testing.T) []*unstructured.Unstructured {
			return renderChart(t, chartLikeDefault)
		}},
		{name: "chart watching two namespaces", namespaces: []string{"team-a", "team-b"}, objs: func(t *testing.T) []*unstructured.Unstructured {
			return renderChart(t, chartNamespaced)
		}},
		{name: "config/samples", namespaces: []string{"samples"}, objs: func(t *testing.T) []*unstructured.Unstructured {
			objs := renderKustomize(t, repoPath(t, "config", "samples"))
			for _, o := range objs {
				o.SetNamespace("samples")
			}
			return objs
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, w := dryRunClient(t)
			ctx := context.Background()
			for _, ns := range tt.namespaces {
				applyNamespace(t, c, ns)
			}
			objs := tt.objs(t)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			// Namespaces are created for real: the dry run of what goes in
			// them needs them to exist.
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("deploy-test"), client.ForceOwnership); err != nil {
						t.Fatalf("apply %s: %v", identity(o), err)
					}
				}
			}
			for _, o := range objs {
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.DryRunAll, client.FieldOwner("deploy-test"), client.ForceOwnership)
				if err != nil {
					t.Errorf("server-side dry run of %s: %v", identity(o), err)
				}
				if ws := w.take(); len(ws) > 0 {
					t.Errorf("apiserver warned about %s: %q", identity(o), ws)
				}
			}
		})
	}
}

// TestPodSecurityIsEnforced shows the dry run above would catch a weakened
// Deployment: without the pod-level hardening, the restricted namespace warns.
func TestPodSecurityIsEnforced(t *testing.T) {
	needEnv(t)
	c, w := dryRunClient(t)
	objs := renderKustomize(t, repoPath(t, "config", "default"))
	applyNamespace(t, c, releaseNamespace)
	d := find(t, objs, "Deployment").DeepCopy()
	unstructured.RemoveNestedField(d.Object, "spec", "template", "spec", "securityContext")
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, ct := range containers {
		delete(ct.(map[string]any), "securityContext")
	}
	if err := unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(d), client.DryRunAll, client.FieldOwner("deploy-test"), client.ForceOwnership)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if ws := w.take(); len(ws) == 0 {
		t.Error("an unhardened Deployment in the restricted namespace drew no Pod Security warning")
	}
}

func applyNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	if err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(ns), client.FieldOwner("deploy-test-setup")); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// operatorFlags parses a container's args and env with the operator's real
// flag set, as main.go does, so a misspelt or invalid flag fails here.
func operatorFlags(t *testing.T, c corev1.Container) manager.Options {
	t.Helper()
	for _, e := range c.Env {
		t.Setenv(e.Name, e.Value)
	}
	for _, k := range []string{manager.EnvIMSURL, manager.EnvPlatformURL} {
		if !hasEnv(c, k) {
			t.Setenv(k, "") // empty counts as unset
		}
	}
	opts := manager.Defaults()
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var stderr bytes.Buffer
	fs.SetOutput(&stderr)
	opts.BindFlags(fs)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(c.Args); err != nil {
		t.Fatalf("the manager rejects its args %q: %v", c.Args, err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("stray arguments %q", fs.Args())
	}
	if err := opts.Validate(); err != nil {
		t.Fatalf("the manager rejects its settings: %v", err)
	}
	return opts
}

func hasEnv(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, "Deployment").Object, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func managerContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no manager container", d.Name)
	return corev1.Container{}
}

// TestDeploymentHardening checks the rendered Deployment of config/default and
// of the chart: non-root, read-only root filesystem, no capabilities,
// RuntimeDefault seccomp, requests and limits, probes on the probe port,
// secure metrics and leader election.
func TestDeploymentHardening(t *testing.T) {
	renders := map[string]func(t *testing.T) []*unstructured.Unstructured{
		"config/default": func(t *testing.T) []*unstructured.Unstructured {
			return renderKustomize(t, repoPath(t, "config", "default"))
		},
		"chart": func(t *testing.T) []*unstructured.Unstructured { return renderChart(t, nil) },
	}
	for name, render := range renders {
		t.Run(name, func(t *testing.T) {
			objs := render(t)
			d := deployment(t, objs)
			pod := d.Spec.Template.Spec
			c := managerContainer(t, d)
			psc, csc := pod.SecurityContext, c.SecurityContext
			if psc == nil || csc == nil {
				t.Fatal("pod or container securityContext missing")
			}
			type check struct {
				what string
				ok   bool
			}
			opts := operatorFlags(t, c)
			checks := []check{
				{"pod runAsNonRoot", psc.RunAsNonRoot != nil && *psc.RunAsNonRoot},
				{"container runAsNonRoot", csc.RunAsNonRoot != nil && *csc.RunAsNonRoot},
				{"non-zero runAsUser", csc.RunAsUser != nil && *csc.RunAsUser != 0},
				{"seccomp RuntimeDefault", psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
				{"readOnlyRootFilesystem", csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem},
				{"no privilege escalation", csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation},
				{"capabilities drop ALL", csc.Capabilities != nil && len(csc.Capabilities.Add) == 0 && cmp.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"})},
				{"not privileged", csc.Privileged == nil || !*csc.Privileged},
				{"no host namespaces", !pod.HostNetwork && !pod.HostPID && !pod.HostIPC},
				{"cpu and memory requests", !c.Resources.Requests.Cpu().IsZero() && !c.Resources.Requests.Memory().IsZero()},
				{"cpu and memory limits", !c.Resources.Limits.Cpu().IsZero() && !c.Resources.Limits.Memory().IsZero()},
				{"liveness probe on /healthz", probeOn(c.LivenessProbe, "/healthz", c, opts.ProbeAddr)},
				{"readiness probe on /readyz", probeOn(c.ReadinessProbe, "/readyz", c, opts.ProbeAddr)},
				{"leader election on", opts.LeaderElect},
				{"more than one replica", d.Spec.Replicas != nil && *d.Spec.Replicas > 1},
				{"secure metrics", opts.SecureMetrics && opts.MetricsAddr != "0" && containerPort(c, "metrics") == portOf(opts.MetricsAddr)},
				{"HTTPS Adobe endpoints", strings.HasPrefix(opts.IMSURL, "https://") && strings.HasPrefix(opts.PlatformURL, "https://") && !opts.AllowInsecureEndpoints},
				{"own ServiceAccount", pod.ServiceAccountName != "" && pod.ServiceAccountName != "default"},
				{"no service account token opt-out", pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken},
			}
			for _, ch := range checks {
				if !ch.ok {
					t.Errorf("%s: not so", ch.what)
				}
			}
			sa := find(t, objs, "ServiceAccount")
			if sa.GetName() != pod.ServiceAccountName || sa.GetNamespace() != d.Namespace {
				t.Errorf("Deployment runs as %s/%s, the rendered ServiceAccount is %s", d.Namespace, pod.ServiceAccountName, identity(sa))
			}
		})
	}
}

func probeOn(p *corev1.Probe, path string, c corev1.Container, probeAddr string) bool {
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
		return false
	}
	port := p.HTTPGet.Port.IntVal
	if p.HTTPGet.Port.StrVal != "" {
		port = containerPort(c, p.HTTPGet.Port.StrVal)
	}
	return port != 0 && port == portOf(probeAddr)
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func portOf(addr string) int32 {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return 0
	}
	var n int32
	for _, r := range addr[i+1:] {
		if r < '0' || r > '9' {
			return 0
		}
		n = n*10 + int32(r-'0')
	}
	return n
}

// TestChartMatchesKustomize: released as "capillary-operator" into
// config/default's namespace, the chart renders the same objects as
// config/default, field for field, but for Helm's own labels and annotations
// and the manager's args, which must parse to the same settings.
func TestChartMatchesKustomize(t *testing.T) {
	kust := renderKustomize(t, repoPath(t, "config", "default"))
	chart := renderChart(t, chartLikeDefault)
	if diff := cmp.Diff(identities(kust), identities(chart)); diff != "" {
		t.Fatalf("objects (-config/default +chart):\n%s", diff)
	}
	byID := map[string]*unstructured.Unstructured{}
	for _, o := range chart {
		byID[identity(o)] = o
	}
	for _, k := range kust {
		h := byID[identity(k)]
		if diff := cmp.Diff(comparable(t, k), comparable(t, h)); diff != "" {
			t.Errorf("%s (-config/default +chart):\n%s", identity(k), diff)
		}
	}
	kopts := operatorFlags(t, managerContainer(t, deployment(t, kust)))
	hopts := operatorFlags(t, managerContainer(t, deployment(t, chart)))
	if diff := cmp.Diff(kopts, hopts); diff != "" {
		t.Errorf("manager settings (-config/default +chart):\n%s", diff)
	}
}

// comparable drops what legitimately differs between the two renders: labels
// and annotations (Helm's and kustomize's own), the release's instance label
// in selectors, and the manager's args (compared as parsed settings).
func comparable(t *testing.T, o *unstructured.Unstructured) map[string]any {
	t.Helper()
	m := o.DeepCopy().Object
	unstructured.RemoveNestedField(m, "metadata", "labels")
	unstructured.RemoveNestedField(m, "metadata", "annotations")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "annotations")
	if o.GetKind() == "Deployment" {
		containers, _, _ := unstructured.NestedSlice(m, "spec", "template", "spec", "containers")
		for _, c := range containers {
			delete(c.(map[string]any), "args")
		}
		_ = unstructured.SetNestedSlice(m, containers, "spec", "template", "spec", "containers")
	}
	dropKey(m, "app.kubernetes.io/instance")
	return m
}

func dropKey(v any, key string) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, key)
		for _, e := range x {
			dropKey(e, key)
		}
	case []any:
		for _, e := range x {
			dropKey(e, key)
		}
	}
}

// TestChartDefaultsAreTheOperatorDefaults: a chart installed with its default
// values runs the operator with the binary's own defaults (plus leader
// election), so the two never drift apart.
func TestChartDefaultsAreTheOperatorDefaults(t *testing.T) {
	got := operatorFlags(t, managerContainer(t, deployment(t, renderChart(t, nil))))
	want := manager.Defaults()
	want.LeaderElect = true
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operator settings (-binary defaults +chart defaults):\n%s", diff)
	}
}

// TestChartValues: each value reaches the manager, and watching namespaces
// swaps the ClusterRole for a Role in each of them.
func TestChartValues(t *testing.T) {
	objs := renderChart(t, chartNamespaced)
	d := deployment(t, objs)
	c := managerContainer(t, d)
	opts := operatorFlags(t, c)
	checks := map[string]bool{
		"watch namespaces":    opts.WatchNamespaces == "team-a,team-b",
		"leader election off": !opts.LeaderElect,
		"resync interval":     opts.ResyncInterval.String() == "30m0s",
		"adobe qps and burst": opts.AdobeQPS == 2.5 && opts.AdobeBurst == 4,
		"endpoints":           opts.IMSURL == "https://ims-eu.example.com" && opts.PlatformURL == "https://platform-eu.example.com",
		"extra args":          opts.AdobeTimeout.String() == "45s",
		"log level":           contains(c.Args, "--zap-log-level=debug"),
		"image digest":        strings.HasSuffix(c.Image, "@sha256:"+strings.Repeat("ab", 32)),
		"replicas":            d.Spec.Replicas != nil && *d.Spec.Replicas == 1,
		"priority class":      d.Spec.Template.Spec.PriorityClassName == "system-cluster-critical",
		"pull secrets":        len(d.Spec.Template.Spec.ImagePullSecrets) == 1,
		"gogc":                envValue(c.Env, "GOGC") == "75",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s: value not applied", what)
		}
	}
	var kinds []string
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "NetworkPolicy", "Service", "PodDisruptionBudget":
			kinds = append(kinds, identity(o))
		}
	}
	sort.Strings(kinds)
	want := []string{
		"ClusterRole /capillary-operator-cluster-role",
		"ClusterRole /capillary-operator-metrics-auth-role",
		"ClusterRole /capillary-operator-metrics-reader",
		"ClusterRoleBinding /capillary-operator-cluster-rolebinding",
		"ClusterRoleBinding /capillary-operator-metrics-auth-rolebinding",
		"Role capillary-operator-system/capillary-operator-credentials-role",
		"Role capillary-operator-system/capillary-operator-leader-election-role",
		"Role team-a/capillary-operator-manager-role",
		"Role team-b/capillary-operator-manager-role",
		"RoleBinding capillary-operator-system/capillary-operator-credentials-rolebinding",
		"RoleBinding capillary-operator-system/capillary-operator-leader-election-rolebinding",
		"RoleBinding team-a/capillary-operator-manager-rolebinding",
		"RoleBinding team-b/capillary-operator-manager-rolebinding",
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("RBAC and networking objects (-want +got):\n%s", diff)
	}
	crds := filterKind(objs, "CustomResourceDefinition")
	if len(crds) != 2 {
		t.Errorf("%d CRDs rendered, want 2 (CapillarySource, ClusterAdobeCredential)", len(crds))
	}
	for _, crd := range crds {
		if _, kept := crd.GetAnnotations()["helm.sh/resource-policy"]; kept {
			t.Errorf("crds.keep=false still marks CRD %s to be kept", crd.GetName())
		}
	}
	for _, crd := range filterKind(renderChart(t, nil), "CustomResourceDefinition") {
		if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
			t.Errorf("by default CRD %s must survive helm uninstall; resource-policy = %q", crd.GetName(), got)
		}
	}
	if off := renderChart(t, map[string]any{"crds": map[string]any{"install": false}}); len(filterKind(off, "CustomResourceDefinition")) != 0 {
		t.Error("crds.install=false still renders the CRD")
	}
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func filterKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// TestChartRejectsBadValues: values.schema.json turns typos and nonsense into
// an error at install time instead of a crash-looping operator.
func TestChartRejectsBadValues(t *testing.T) {
	tests := map[string]map[string]any{
		"unknown key":             {"replicaCount": 3},
		"log level":               {"logLevel": "verbose"},
		"zero qps":                {"adobeQps": 0},
		"gogc not a percentage":   {"gogc": "fifty"},
		"duration without unit":   {"resyncInterval": "10"},
		"namespace not DNS":       {"watchNamespaces": []any{"Team_A"}},
		"extra arg not a flag":    {"extraArgs": []any{"adobe-timeout=1s"}},
		"pull policy":             {"image": map[string]any{"pullPolicy": "Sometimes"}},
		"no replicas":             {"replicas": 0},
		"endpoint without scheme": {"imsUrl": "ims-na1.adobelogin.com"},
	}
	for name, vals := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := tryRenderChart(vals); err == nil {
				t.Errorf("values %v rendered without an error", vals)
			}
		})
	}
}

// TestChartCopiesAreCurrent: the chart carries copies of the generated CRD and
// manager ClusterRole (Helm cannot read files outside the chart).
func TestChartCopiesAreCurrent(t *testing.T) {
	crds, err := filepath.Glob(repoPath(t, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	pairs := map[string]string{
		repoPath(t, "config", "rbac", "role.yaml"):        repoPath(t, "dist", "chart", "files", "rbac", "role.yaml"),
		repoPath(t, "config", "prometheus", "rules.yaml"): repoPath(t, "dist", "chart", "files", "prometheus", "rules.yaml"),
	}
	for _, src := range crds {
		pairs[src] = repoPath(t, "dist", "chart", "files", "crds", filepath.Base(src))
	}
	copies, _ := filepath.Glob(repoPath(t, "dist", "chart", "files", "crds", "*.yaml"))
	if len(copies) != len(crds) {
		t.Errorf("dist/chart/files/crds holds %d files, config/crd/bases %d", len(copies), len(crds))
	}
	for src, dst := range pairs {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, want) {
			rel, _ := filepath.Rel(root, src)
			relDst, _ := filepath.Rel(root, dst)
			t.Errorf("%s is not a copy of %s; after `make manifests` run: cp %s %s", relDst, rel, rel, relDst)
		}
	}
}

// TestHelmLint runs Helm's own chart linter for Kubernetes 1.37.
func TestHelmLint(t *testing.T) {
	kv := &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	l := lint.AllWithKubeVersion(repoPath(t, "dist", "chart"), nil, releaseNamespace, kv)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}
