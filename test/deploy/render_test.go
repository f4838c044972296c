package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The release the chart is compared with config/default under: its name
// gives the chart the same name prefix, its namespace is config/default's.
const (
	releaseName      = "capillary-operator"
	releaseNamespace = "capillary-operator-system"
)

func repoPath(t testing.TB, parts ...string) string {
	t.Helper()
	return filepath.Join(append([]string{root}, parts...)...)
}

// renderKustomize builds a kustomization as `kubectl apply -k` would.
func renderKustomize(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		// Through JSON, so numbers are int64 as in any decoded object.
		data, err := r.MarshalJSON()
		u := &unstructured.Unstructured{}
		if err == nil {
			err = u.UnmarshalJSON(data)
		}
		if err != nil {
			t.Fatalf("kustomize build %s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		out = append(out, u)
	}
	return out
}

// renderChart renders dist/chart as `helm template` would, with the values
// file's defaults overridden by vals (checked against values.schema.json).
func renderChart(t testing.TB, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := tryRenderChart(vals)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func tryRenderChart(vals map[string]any) ([]*unstructured.Unstructured, error) {
	chrt, err := loader.Load(filepath.Join(root, "dist", "chart"))
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	rv, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, fmt.Errorf("chart values: %w", err)
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, rv)
	if err != nil {
		return nil, fmt.Errorf("render chart: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*unstructured.Unstructured
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue // NOTES.txt, helpers
		}
		objs, err := decodeYAML(files[n])
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", n, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// decodeYAML splits a multi-document YAML stream into objects, decoded as
// the apiserver would (integers as int64).
func decodeYAML(s string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
			continue // an empty document (a template switched off)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
}

// find returns the only object of kind, or fails.
func find(t testing.TB, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s, rendered %d", kind, len(found))
	}
	return found[0]
}

// identity names an object: kind, namespace and name.
func identity(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}

func identities(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, identity(o))
	}
	sort.Strings(out)
	return out
}

// TestChartPrometheusRule: off by default; on, it carries the alerts of
// config/prometheus/rules.yaml unchanged ($labels not read as a template),
// with the selector labels asked for.
func TestChartPrometheusRule(t *testing.T) {
	find := func(objs []*unstructured.Unstructured) *unstructured.Unstructured {
		for _, o := range objs {
			if o.GetKind() == "PrometheusRule" {
				return o
			}
		}
		return nil
	}
	if find(renderChart(t, nil)) != nil {
		t.Error("a PrometheusRule is rendered by default")
	}
	rule := find(renderChart(t, map[string]any{"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus"}}}))
	if rule == nil {
		t.Fatal("no PrometheusRule with prometheusRule.enabled")
	}
	if rule.GetLabels()["release"] != "kube-prometheus" || rule.GetNamespace() != releaseNamespace {
		t.Errorf("labels %v, namespace %q", rule.GetLabels(), rule.GetNamespace())
	}
	var src map[string]any
	if err := yaml.Unmarshal([]byte(readFile(t, repoPath(t, "config", "prometheus", "rules.yaml"))), &src); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(src["spec"], rule.Object["spec"]); diff != "" {
		t.Errorf("rendered spec differs from config/prometheus/rules.yaml (-want +got):\n%s", diff)
	}
}
