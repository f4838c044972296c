package release

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Entrypoint is the manager's path in the image, as the Dockerfile has it.
	Entrypoint = "/manager"
	// UID and GID run the manager: not root, and no name needed (the image
	// has no /etc/passwd). The manifests' runAsUser and runAsGroup agree.
	UID = 65532
	GID = 65532

	// Where the image goes in an output folder (see WriteImage).
	LayoutDir   = "oci"
	TarballName = "capillary-operator-image.tar"
	DigestName  = "image-digest"
)

// Annotations are the OCI annotations of the image for st, on the manifest
// and, as labels, on the config (where `docker inspect` shows them).
func Annotations(st Stamp) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "capillary-operator",
		"org.opencontainers.image.description": "Kubernetes operator connecting Capillary to Adobe Experience Platform",
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.revision":    st.Revision,
		"org.opencontainers.image.version":     st.Version,
		"org.opencontainers.image.created":     st.Time.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
}

// Image assembles the image of the manager binary for linux/arch: no base,
// one layer holding only the binary at /manager (root-owned, mode 0755, time
// zero), user 65532, the manager as entrypoint. Every time in the config is
// the stamp's, so the digest depends only on the binary and the stamp.
func Image(binary []byte, arch string, st Stamp) (v1.Image, error) {
	layerTar, err := binaryLayer(binary)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: st.Time.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "internal/release: the manager, CGO_ENABLED=0 go " + fmt.Sprint(BuildArgs(st, "manager")[1:]),
			Comment:   "capillary-operator " + st.Version,
		},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{Entrypoint},
		WorkingDir: "/",
		Labels:     Annotations(st),
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	annotated, ok := mutate.Annotations(img, Annotations(st)).(v1.Image)
	if !ok {
		return nil, fmt.Errorf("annotating the image: not an image")
	}
	return annotated, nil
}

// binaryLayer is the uncompressed layer: one regular file, manager, with
// nothing of the build machine in its header.
func binaryLayer(binary []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     Entrypoint[1:],
		Mode:     0o755,
		Size:     int64(len(binary)),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteImage writes img under dir: an OCI image layout in dir/oci (what
// `crane push` and `skopeo copy oci:` read, keeping the digest), a tarball
// for `docker load` tagged repository:tag, and the digest in
// dir/image-digest. It returns the digest.
func WriteImage(img v1.Image, dir, repository, tag string) (v1.Hash, error) {
	digest, err := img.Digest()
	if err != nil {
		return digest, err
	}
	ref, err := name.NewTag(repository + ":" + tag)
	if err != nil {
		return digest, fmt.Errorf("image tag: %w", err)
	}
	layoutDir := filepath.Join(dir, LayoutDir)
	if err := os.RemoveAll(layoutDir); err != nil {
		return digest, err
	}
	p, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return digest, err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
	})); err != nil {
		return digest, err
	}
	if err := tarball.WriteToFile(filepath.Join(dir, TarballName), ref, img); err != nil {
		return digest, err
	}
	return digest, os.WriteFile(filepath.Join(dir, DigestName), []byte(digest.String()+"\n"), 0o644)
}

// Tag is the image tag for a version: the version itself when it is a valid
// tag (git describe's output is), else "dev".
func Tag(version string) string {
	if _, err := name.NewTag("example.com/x:" + version); err != nil || version == "" {
		return "dev"
	}
	return version
}

// BinaryName is the manager binary's name in an output folder.
func BinaryName(arch string) string { return "manager-linux-" + arch }

// BuildImage builds the manager from the module at dir into
// out/manager-linux-arch and assembles its image.
func BuildImage(ctx context.Context, dir, out, arch string, st Stamp) (v1.Image, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(filepath.Join(out, BinaryName(arch)))
	if err != nil {
		return nil, err
	}
	if err := BuildManager(ctx, dir, bin, arch, st); err != nil {
		return nil, err
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return Image(binary, arch, st)
}
