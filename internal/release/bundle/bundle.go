// Package bundle makes the install artefacts of a release, pinned to the
// release's image by digest: install.yaml (config/default rendered by
// kustomize), the packaged Helm chart, and the checksums file. Everything it
// writes depends only on the checkout and the stamp, so two builds of one
// commit give the same bytes.
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/aepoperator/capillary-operator/internal/release"
)

// Names of the files a release holds besides the image.
const (
	InstallName   = "install.yaml"
	SBOMName      = "sbom.cdx.json"
	ChecksumsName = "SHA256SUMS"
)

// ImageRef is the image pinned by digest: repository@sha256:....
func ImageRef(repository, digest string) string {
	return repository + "@" + digest
}

// InstallYAML renders config/default of the checkout at root as
// `kustomize build` does, with the operator's image replaced by
// repository@digest. The kustomization is rendered from a copy of config/
// in memory with an overlay on top, so nothing is written to the checkout.
func InstallYAML(root, repository, digest string, st release.Stamp) ([]byte, error) {
	mem := filesys.MakeFsInMemory()
	configDir := filepath.Join(root, "config")
	err := filepath.WalkDir(configDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(configDir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/src/config", filepath.ToSlash(rel)), data)
	})
	if err != nil {
		return nil, fmt.Errorf("read config/: %w", err)
	}
	overlay := fmt.Sprintf(`resources:
  - ../config/default
images:
  - name: %s
    newName: %s
    digest: %s
`, release.Repository, repository, digest)
	if err := mem.WriteFile("/src/release/kustomization.yaml", []byte(overlay)); err != nil {
		return nil, err
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/src/release")
	if err != nil {
		return nil, fmt.Errorf("kustomize build config/default: %w", err)
	}
	pinned := 0
	for _, r := range rm.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		images, err := r.GetSlice("spec.template.spec.containers")
		if err != nil {
			return nil, err
		}
		for _, c := range images {
			if m, ok := c.(map[string]any); ok && m["image"] == ImageRef(repository, digest) {
				pinned++
			}
		}
	}
	if pinned != 1 {
		return nil, fmt.Errorf("kustomize build config/default: want one container running %s, found %d (is the image in config/manager still %s?)", ImageRef(repository, digest), pinned, release.Repository)
	}
	out, err := rm.AsYaml()
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# capillary-operator %s (commit %s): config/default with the image pinned by digest.\n# kubectl apply --server-side -f install.yaml\n", st.Version, st.Revision)
	return append([]byte(header), out...), nil
}

var (
	semverTag  = regexp.MustCompile(`^v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$`)
	appVersion = regexp.MustCompile(`(?m)^appVersion:.*$`)
	chartVer   = regexp.MustCompile(`(?m)^version:.*$`)
	imageRepo  = regexp.MustCompile(`(?m)^  repository: .*$`)
	imageDig   = regexp.MustCompile(`(?m)^  digest: .*$`)
)

// ChartVersion is the chart's version for a release: the tag without its v
// when the version is a semver tag (v0.2.0, or git describe's v0.2.0-3-gabcdef0),
// else the chart's own.
func ChartVersion(own, version string) string {
	if m := semverTag.FindStringSubmatch(version); m != nil {
		return m[1]
	}
	return own
}

// PackageChart packages the chart at dir as `helm package` would (a gzip'ed
// tar of its files under a folder named after the chart), with appVersion
// set to the stamp's version, the version set by ChartVersion, and the
// values' image.repository and image.digest pinning the image. Chart.yaml
// and values.yaml are edited line by line, so their comments stay. Every
// entry has mode 0644 and the stamp's time, in name order; the gzip header
// has no name and no time. It returns the file name
// (<chart>-<version>.tgz) and the archive.
func PackageChart(dir, repository, digest string, st release.Stamp) (string, []byte, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return "", nil, fmt.Errorf("load chart: %w", err)
	}
	version := ChartVersion(chrt.Metadata.Version, st.Version)
	files := map[string][]byte{}
	for _, f := range chrt.Raw {
		files[f.Name] = f.Data
	}
	edits := []struct {
		file string
		re   *regexp.Regexp
		line string
	}{
		{"Chart.yaml", appVersion, fmt.Sprintf("appVersion: %q", st.Version)},
		{"Chart.yaml", chartVer, "version: " + version},
		{"values.yaml", imageRepo, "  repository: " + repository},
		{"values.yaml", imageDig, fmt.Sprintf("  digest: %q", digest)},
	}
	for _, e := range edits {
		if n := len(e.re.FindAllIndex(files[e.file], -1)); n != 1 {
			return "", nil, fmt.Errorf("chart %s: want one line matching %s, found %d", e.file, e.re, n)
		}
		files[e.file] = e.re.ReplaceAllLiteral(files[e.file], []byte(e.line))
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", nil, err
	}
	tw := tar.NewWriter(zw)
	for _, n := range names {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     path.Join(chrt.Metadata.Name, n),
			Mode:     0o644,
			Size:     int64(len(files[n])),
			ModTime:  st.Time,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return "", nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return "", nil, err
	}
	if err := zw.Close(); err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("%s-%s.tgz", chrt.Metadata.Name, version), buf.Bytes(), nil
}

// Checksums is a SHA256SUMS file (`sha256sum -c` reads it) for every
// regular file under dir except the checksums file itself, with paths
// relative to dir, in name order.
func Checksums(dir string) ([]byte, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ChecksumsName {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+filepath.ToSlash(rel)+"\n")
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return []byte(strings.Join(lines, "")), nil
}
