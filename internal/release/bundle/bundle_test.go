package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/release"
	"github.com/aepoperator/capillary-operator/internal/release/bundle"
)

const (
	repo   = "registry.example.com/team/capillary-operator"
	digest = "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

// A commit two past the tag v0.3.0.
var stamp = release.Stamp{Version: "v0.3.0-2-g89abcdef0123", Revision: strings.Repeat("89abcdef", 5), Time: time.Unix(1793957400, 0).UTC()}

func decode(t *testing.T, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(stream), "\n---\n") {
		data, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(data)); s == "null" || s == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func images(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			out = append(out, c.(map[string]any)["image"].(string))
		}
	}
	return out
}

// TestInstallYAML: install.yaml is config/default, object for object, with
// only the image changed, to repository@digest.
func TestInstallYAML(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	got, err := bundle.InstallYAML(root, repo, digest, stamp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte(stamp.Revision)) {
		t.Error("install.yaml does not say which commit it is")
	}
	objs := decode(t, got)
	if imgs := images(t, objs); len(imgs) != 1 || imgs[0] != repo+"@"+digest {
		t.Fatalf("install.yaml's images %q, want [%s@%s]", imgs, repo, digest)
	}
	if again, _ := bundle.InstallYAML(root, repo, digest, stamp); !bytes.Equal(got, again) {
		t.Error("two renderings differ")
	}

	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	want := decode(t, plain)
	if len(want) != len(objs) {
		t.Fatalf("install.yaml has %d objects, config/default %d", len(objs), len(want))
	}
	for i := range want {
		w, g := want[i].DeepCopy(), objs[i].DeepCopy()
		if g.GetKind() == "Deployment" {
			cs, _, _ := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers")
			cs[0].(map[string]any)["image"] = repo + "@" + digest
			_ = unstructured.SetNestedSlice(w.Object, cs, "spec", "template", "spec", "containers")
		}
		wj, _ := w.MarshalJSON()
		gj, _ := g.MarshalJSON()
		if !bytes.Equal(wj, gj) {
			t.Errorf("%s %s differs from config/default's beyond the image", g.GetKind(), g.GetName())
		}
	}
}

// TestPackageChart: the packaged chart loads as helm loads an archive, says
// the release's appVersion and version, and renders the image by digest;
// packaging is byte for byte reproducible.
func TestPackageChart(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "dist", "chart")
	name, tgz, err := bundle.PackageChart(dir, repo, digest, stamp)
	if err != nil {
		t.Fatal(err)
	}
	if name != "capillary-operator-0.3.0-2-g89abcdef0123.tgz" {
		t.Errorf("file name %s", name)
	}
	if _, again, _ := bundle.PackageChart(dir, repo, digest, stamp); !bytes.Equal(tgz, again) {
		t.Error("two packagings differ")
	}

	chrt, err := loader.LoadArchive(bytes.NewReader(tgz))
	if err != nil {
		t.Fatalf("helm cannot load the package: %v", err)
	}
	if chrt.Metadata.AppVersion != stamp.Version || chrt.Metadata.Version != "0.3.0-2-g89abcdef0123" {
		t.Errorf("appVersion %q version %q", chrt.Metadata.AppVersion, chrt.Metadata.Version)
	}
	if err := chrt.Validate(); err != nil {
		t.Error(err)
	}
	orig, err := loader.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(chrt.Raw) != len(orig.Raw) || len(chrt.Templates) != len(orig.Templates) {
		t.Errorf("the package has %d files (%d templates), the chart %d (%d)", len(chrt.Raw), len(chrt.Templates), len(orig.Raw), len(orig.Templates))
	}
	rv, err := chartutil.ToRenderValues(chrt, map[string]any{}, chartutil.ReleaseOptions{Name: "capillary-operator", Namespace: "capillary-operator-system", IsInstall: true}, chartutil.DefaultCapabilities.Copy())
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, rv)
	if err != nil {
		t.Fatal(err)
	}
	var rendered []byte
	for n, f := range files {
		if strings.HasSuffix(n, ".yaml") {
			rendered = append(rendered, "\n---\n"+f...)
		}
	}
	if imgs := images(t, decode(t, rendered)); len(imgs) != 1 || imgs[0] != repo+"@"+digest {
		t.Errorf("the packaged chart runs %q, want [%s@%s]", imgs, repo, digest)
	}

	// Every entry: under capillary-operator/, mode 0644, the commit's time;
	// in name order; the gzip header without a name or a time.
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q time %s", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !strings.HasPrefix(h.Name, "capillary-operator/") || h.Mode != 0o644 || !h.ModTime.Equal(stamp.Time) || h.Uid != 0 || h.Uname != "" {
			t.Errorf("entry %s: mode %o time %s owner %d %q", h.Name, h.Mode, h.ModTime, h.Uid, h.Uname)
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("entries not in name order: %q", names)
	}
}

func TestChartVersion(t *testing.T) {
	for version, want := range map[string]string{
		"v1.2.3":                 "1.2.3",
		"v1.2.3-rc.1":            "1.2.3-rc.1",
		"v1.2.3-4-g0123456789ab": "1.2.3-4-g0123456789ab",
		"0123456789ab":           "0.1.0",
		"0123456789ab-dirty":     "0.1.0",
		"dev":                    "0.1.0",
	} {
		if got := bundle.ChartVersion("0.1.0", version); got != want {
			t.Errorf("ChartVersion(%q) = %q, want %q", version, got, want)
		}
	}
}

// TestChecksums writes what sha256sum -c checks.
func TestChecksums(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"b.yaml": "b", "a.tgz": "a", "oci/index.json": "{}", bundle.ChecksumsName: "old"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sums, err := bundle.Checksums(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a.tgz\n" +
		"3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  b.yaml\n" +
		"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a  oci/index.json\n"
	if string(sums) != want {
		t.Errorf("SHA256SUMS:\n%s\nwant:\n%s", sums, want)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		if err := os.WriteFile(filepath.Join(dir, bundle.ChecksumsName), sums, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sha256sum", "--check", "--quiet", bundle.ChecksumsName)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum --check: %v\n%s", err, out)
		}
	}
}
