package release_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/release"
)

var testStamp = release.Stamp{
	Version:  "v0.3.0-2-g0123456789ab",
	Revision: "0123456789abcdef0123456789abcdef01234567",
	Time:     time.Date(2026, 11, 5, 9, 30, 0, 0, time.UTC),
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// layerFiles reads the image's only layer: the headers and contents.
func layerFiles(t testing.TB, img v1.Image) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("the image has %d layers, want one", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var hdrs []*tar.Header
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs, files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, hdr)
		files[hdr.Name] = data
	}
}

// TestImageConfig checks what the Deployment and the chart assume of the
// image: user 65532 (numeric: there is no /etc/passwd), the manager as
// entrypoint with no command, and nothing but the manager in it, so no
// shell; and the OCI media types and annotations.
func TestImageConfig(t *testing.T) {
	binary := []byte("\x7fELF not really a manager")
	img, err := release.Image(binary, "arm64", testStamp)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cfg.Config.User)
	}
	if got := cfg.Config.Entrypoint; len(got) != 1 || got[0] != "/manager" {
		t.Errorf("entrypoint %q, want [/manager]", got)
	}
	if len(cfg.Config.Cmd) != 0 || len(cfg.Config.Env) != 0 || len(cfg.Config.Volumes) != 0 {
		t.Errorf("cmd %q, env %q, volumes %v: want none", cfg.Config.Cmd, cfg.Config.Env, cfg.Config.Volumes)
	}
	if cfg.OS != "linux" || cfg.Architecture != "arm64" {
		t.Errorf("platform %s/%s, want linux/arm64", cfg.OS, cfg.Architecture)
	}
	if !cfg.Created.Equal(testStamp.Time) {
		t.Errorf("created %s, want the commit's time %s", cfg.Created.Time, testStamp.Time)
	}
	for _, h := range cfg.History {
		if !h.Created.Equal(testStamp.Time) {
			t.Errorf("history entry created %s, want %s", h.Created.Time, testStamp.Time)
		}
	}

	hdrs, files := layerFiles(t, img)
	if len(hdrs) != 1 || hdrs[0].Name != "manager" {
		var names []string
		for _, h := range hdrs {
			names = append(names, h.Name)
		}
		t.Fatalf("layer holds %q, want only manager (no shell, no base)", names)
	}
	h := hdrs[0]
	if h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(0, 0)) {
		t.Errorf("manager's header: type %c mode %o owner %d:%d (%q:%q) time %s; want a root-owned regular file, 0755, time zero",
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
	}
	if !bytes.Equal(files["manager"], binary) {
		t.Error("the layer's manager is not the binary")
	}

	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("media types %s, %s, %s; want OCI's", m.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
	}
	want := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/aepoperator/capillary-operator",
		"org.opencontainers.image.revision": testStamp.Revision,
		"org.opencontainers.image.version":  testStamp.Version,
		"org.opencontainers.image.created":  "2026-11-05T09:30:00Z",
	}
	for k, v := range want {
		if m.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
		if cfg.Config.Labels[k] != v {
			t.Errorf("config label %s = %q, want %q", k, cfg.Config.Labels[k], v)
		}
	}
}

// TestImageDigestDependsOnlyOnBinaryAndStamp: assembling twice gives one
// digest; another binary or another commit gives another.
func TestImageDigestDependsOnlyOnBinaryAndStamp(t *testing.T) {
	digest := func(binary string, st release.Stamp) v1.Hash {
		img, err := release.Image([]byte(binary), "amd64", st)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest("manager", testStamp)
	if again := digest("manager", testStamp); again != first {
		t.Errorf("two assemblies: %s and %s", first, again)
	}
	if other := digest("manager2", testStamp); other == first {
		t.Error("another binary, same digest")
	}
	later := testStamp
	later.Revision = strings.Repeat("f", 40)
	if other := digest("manager", later); other == first {
		t.Error("another revision, same digest")
	}
}

// TestWriteImage writes the OCI layout and the docker tarball, and reads
// them back as crane and docker load would.
func TestWriteImage(t *testing.T) {
	img, err := release.Image([]byte("manager"), "amd64", testStamp)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	digest, err := release.WriteImage(img, dir, "registry.example.com/capillary-operator", release.Tag(testStamp.Version))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); digest != want {
		t.Errorf("WriteImage returned %s, the image is %s", digest, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, release.DigestName)); err != nil || string(b) != digest.String()+"\n" {
		t.Errorf("image-digest holds %q (%v), want %s", b, err, digest)
	}

	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, release.LayoutDir))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digest || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != testStamp.Version {
		t.Fatalf("OCI layout index: %+v; want one manifest %s named %s", im.Manifests, digest, testStamp.Version)
	}

	fromTar, err := tarball.ImageFromPath(filepath.Join(dir, release.TarballName), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfgName, err := fromTar.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.ConfigName(); cfgName != want {
		t.Errorf("the tarball's config is %s, the image's %s", cfgName, want)
	}
	mf, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(filepath.Join(dir, release.TarballName)) })
	if err != nil {
		t.Fatal(err)
	}
	if len(mf) != 1 || len(mf[0].RepoTags) != 1 || mf[0].RepoTags[0] != "registry.example.com/capillary-operator:"+testStamp.Version {
		t.Errorf("docker tarball manifest %+v, want the tag registry.example.com/capillary-operator:%s", mf, testStamp.Version)
	}
}

func TestTag(t *testing.T) {
	for in, want := range map[string]string{
		"v0.3.0":                 "v0.3.0",
		"0123456789ab-dirty":     "0123456789ab-dirty",
		"":                       "dev",
		"has/slash":              "dev",
		strings.Repeat("x", 129): "dev",
	} {
		if got := release.Tag(in); got != want {
			t.Errorf("Tag(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDockerfileBuildsTheSameBinary holds the Dockerfile to the release
// build: static, -trimpath, -buildvcs=false, GOFLAGS=-mod=readonly and the
// same linker flags and stamp (its build arguments in place of the values).
func TestDockerfileBuildsTheSameBinary(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The RUN instruction that builds, its continuation lines joined.
	df := strings.ReplaceAll(string(b), "\\\n", " ")
	var build string
	for _, line := range strings.Split(df, "\n") {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			build = line
		}
	}
	if build == "" {
		t.Fatal("no RUN ... go build in the Dockerfile")
	}
	fields := strings.Fields(build)
	has := func(s string) bool {
		for _, f := range fields {
			if f == s {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "-trimpath", "-buildvcs=false", "."} {
		if !has(want) {
			t.Errorf("the Dockerfile's build lacks %s: %s", want, build)
		}
	}
	ldflags := regexp.MustCompile(`-ldflags="([^"]*)"`).FindStringSubmatch(build)
	if want := release.LDFlags("${VERSION}", "${REVISION}"); ldflags == nil || ldflags[1] != want {
		t.Errorf("the Dockerfile's -ldflags: %q, want %q", ldflags, want)
	}
	// The release build's own arguments, for comparison.
	args := release.BuildArgs(testStamp, "out")
	for _, a := range args {
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "-ldflags=") && a != "-o" && !has(a) {
			t.Errorf("the release build passes %s, the Dockerfile does not", a)
		}
	}
	for _, want := range []string{`ARG VERSION=`, `ARG REVISION=`, `ENTRYPOINT ["/manager"]`, `USER 65532:65532`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the Dockerfile lacks %s", want)
		}
	}
}
