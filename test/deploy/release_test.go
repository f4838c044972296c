package deploy_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aepoperator/capillary-operator/internal/release"
	"github.com/aepoperator/capillary-operator/internal/release/bundle"
)

// A release's stamp and digest, as make release would give them.
var (
	releaseStamp = release.Stamp{
		Version:  "v0.3.0",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Time:     time.Date(2026, 11, 5, 9, 30, 0, 0, time.UTC),
	}
	releaseDigest = "sha256:" + strings.Repeat("5e", 32)
)

// renderInstallYAML is dist/release/install.yaml as make release writes it.
func renderInstallYAML(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	data, err := bundle.InstallYAML(root, release.Repository, releaseDigest, releaseStamp)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeYAML(string(data))
	if err != nil {
		t.Fatalf("install.yaml: %v", err)
	}
	return objs
}

// renderPackagedChart renders the chart as make release packages it, with
// the values vals.
func renderPackagedChart(t *testing.T, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	_, tgz, err := bundle.PackageChart(repoPath(t, "dist", "chart"), release.Repository, releaseDigest, releaseStamp)
	if err != nil {
		t.Fatal(err)
	}
	chrt, err := loader.LoadArchive(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities.Copy())
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, rv)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for n, f := range files {
		if strings.HasSuffix(n, ".yaml") {
			all.WriteString("\n---\n" + f)
		}
	}
	objs, err := decodeYAML(all.String())
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestImageAgreesWithManifests: what the Deployments of config/default,
// install.yaml, the chart and the packaged chart assume of the image is what
// make image builds. They run it as the image's user and group (numeric,
// non-root), with a read-only root filesystem (the image holds only the
// manager, which writes nothing), with the image's entrypoint (no command),
// and need no shell (the probes are HTTP, no exec anywhere).
func TestImageAgreesWithManifests(t *testing.T) {
	img, err := release.Image([]byte("manager"), "amd64", releaseStamp)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	user, group, ok := strings.Cut(cfg.Config.User, ":")
	uid, err1 := strconv.ParseInt(user, 10, 64)
	gid, err2 := strconv.ParseInt(group, 10, 64)
	if !ok || err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("image user %q: want numeric uid:gid, not root", cfg.Config.User)
	}
	renders := map[string]func(t *testing.T) []*unstructured.Unstructured{
		"config/default": func(t *testing.T) []*unstructured.Unstructured {
			return renderKustomize(t, repoPath(t, "config", "default"))
		},
		"install.yaml": renderInstallYAML,
		"chart":        func(t *testing.T) []*unstructured.Unstructured { return renderChart(t, nil) },
		"packaged chart": func(t *testing.T) []*unstructured.Unstructured {
			return renderPackagedChart(t, nil)
		},
	}
	for name, render := range renders {
		t.Run(name, func(t *testing.T) {
			d := deployment(t, render(t))
			pod := d.Spec.Template.Spec
			c := managerContainer(t, d)
			runAsUser, runAsGroup := c.SecurityContext.RunAsUser, c.SecurityContext.RunAsGroup
			if runAsUser == nil && pod.SecurityContext != nil {
				runAsUser = pod.SecurityContext.RunAsUser
			}
			if runAsGroup == nil && pod.SecurityContext != nil {
				runAsGroup = pod.SecurityContext.RunAsGroup
			}
			if runAsUser == nil || *runAsUser != uid {
				t.Errorf("runAsUser %v, the image's user is %d", ptrString(runAsUser), uid)
			}
			if runAsGroup == nil || *runAsGroup != gid {
				t.Errorf("runAsGroup %v, the image's group is %d", ptrString(runAsGroup), gid)
			}
			if ro := c.SecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
				t.Error("readOnlyRootFilesystem is not true")
			}
			if len(c.Command) != 0 {
				t.Errorf("command %q overrides the image's entrypoint %q", c.Command, cfg.Config.Entrypoint)
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p != nil && p.Exec != nil {
					t.Errorf("an exec probe %q: the image has no shell or tools", p.Exec.Command)
				}
			}
			if c.Lifecycle != nil {
				t.Errorf("lifecycle hooks %+v: the image has nothing to run them with", c.Lifecycle)
			}
			for _, v := range pod.Volumes {
				if v.EmptyDir != nil || v.HostPath != nil {
					t.Errorf("volume %s: the manager needs nothing writable", v.Name)
				}
			}
		})
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}

// TestReleasePinsTheImage: install.yaml and the packaged chart run the
// image by digest, and only that.
func TestReleasePinsTheImage(t *testing.T) {
	want := release.Repository + "@" + releaseDigest
	for name, objs := range map[string][]*unstructured.Unstructured{
		"install.yaml":   renderInstallYAML(t),
		"packaged chart": renderPackagedChart(t, chartLikeDefault),
	} {
		if c := managerContainer(t, deployment(t, objs)); c.Image != want {
			t.Errorf("%s runs %s, want %s", name, c.Image, want)
		}
	}
}
