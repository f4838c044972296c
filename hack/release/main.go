// Command release makes a release's artefacts in one folder, dist/release
// (ignored by git: a committed file cannot pin its own commit's image):
//
//	go run ./hack/release [-out dist/release] [-repository ghcr.io/aepoperator/capillary-operator] [-arch amd64]
//
// It writes the image as hack/image does (an OCI layout in oci/, a `docker
// load` tarball, the digest in image-digest, and the static manager binary);
// install.yaml, config/default with the image pinned by digest; the Helm
// chart, packaged, with appVersion and the image digest; sbom.cdx.json, a
// CycloneDX SBOM of the Go modules linked into the manager (and the standard
// library), read from the binary by cyclonedx-gomod, run with `go run
// module@version` so its dependencies never enter go.mod; and SHA256SUMS
// over all of it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/aepoperator/capillary-operator/internal/release"
	"github.com/aepoperator/capillary-operator/internal/release/bundle"
)

// cycloneDX is the SBOM generator, at a fixed version.
const cycloneDX = "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0"

func main() {
	out := flag.String("out", filepath.Join("dist", "release"), "output folder (emptied first)")
	repository := flag.String("repository", release.Repository, "the repository the image is pushed to; install.yaml and the chart pin repository@digest")
	arch := flag.String("arch", "amd64", "the image's architecture (linux/<arch>)")
	version := flag.String("version", "", "the version to stamp (default: git describe --tags --always --dirty --abbrev=12)")
	sbom := flag.Bool("sbom", true, "make the SBOM (downloads cyclonedx-gomod through the Go module proxy on first use)")
	flag.Parse()
	if err := run(context.Background(), *out, *repository, *arch, *version, *sbom); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, repository, arch, version string, sbom bool) error {
	st, err := release.ReadStamp(ctx, ".")
	if err != nil {
		return err
	}
	if version != "" {
		st.Version = version
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	img, err := release.BuildImage(ctx, ".", out, arch, st)
	if err != nil {
		return err
	}
	digest, err := release.WriteImage(img, out, repository, release.Tag(st.Version))
	if err != nil {
		return err
	}
	install, err := bundle.InstallYAML(".", repository, digest.String(), st)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, bundle.InstallName), install, 0o644); err != nil {
		return err
	}
	chartName, chart, err := bundle.PackageChart(filepath.Join("dist", "chart"), repository, digest.String(), st)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, chartName), chart, 0o644); err != nil {
		return err
	}
	if sbom {
		if err := writeSBOM(ctx, filepath.Join(out, bundle.SBOMName), filepath.Join(out, release.BinaryName(arch)), st); err != nil {
			return err
		}
	}
	sums, err := bundle.Checksums(out)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, bundle.ChecksumsName), sums, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "release %s (commit %s) in %s:\n%s", st.Version, st.Revision, out, sums)
	fmt.Println(bundle.ImageRef(repository, digest.String()))
	return nil
}

// writeSBOM describes the modules linked into the manager binary, from its
// build information (`cyclonedx-gomod bin`: exactly what is in the image,
// for its platform), without a serial number or a timestamp. The tool is
// built with -trimpath: the SBOM carries the tool's hashes, which must not
// depend on where the module cache is.
func writeSBOM(ctx context.Context, file, binary string, st release.Stamp) error {
	gocmd := os.Getenv("GO")
	if gocmd == "" {
		gocmd = "go"
	}
	cmd := exec.CommandContext(ctx, gocmd, "run", cycloneDX, "bin",
		"-json", "-std", "-noserial", "-notimestamp", "-version", st.Version, "-output", file, binary)
	cmd.Env = append(os.Environ(), "GOFLAGS=-trimpath -buildvcs=false")
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("SBOM (go run %s): %w", cycloneDX, err)
	}
	return nil
}
