// Command image builds the operator's container image without a container
// engine: the manager, statically and reproducibly (see internal/release),
// in an otherwise empty image, written as an OCI layout and a `docker load`
// tarball under bin/image. No registry and no daemon are touched.
//
//	go run ./hack/image [-out bin/image] [-repository ghcr.io/aepoperator/capillary-operator] [-arch amd64]
//
// It prints the image's digest: the same commit gives the same digest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/aepoperator/capillary-operator/internal/release"
)

func main() {
	out := flag.String("out", filepath.Join("bin", "image"), "output folder")
	repository := flag.String("repository", release.Repository, "the image's repository, for the tarball's tag")
	arch := flag.String("arch", "amd64", "the image's architecture (linux/<arch>)")
	version := flag.String("version", "", "the version to stamp (default: git describe --tags --always --dirty --abbrev=12)")
	flag.Parse()
	if err := run(context.Background(), *out, *repository, *arch, *version); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, repository, arch, version string) error {
	st, err := release.ReadStamp(ctx, ".")
	if err != nil {
		return err
	}
	if version != "" {
		st.Version = version
	}
	img, err := release.BuildImage(ctx, ".", out, arch, st)
	if err != nil {
		return err
	}
	tag := release.Tag(st.Version)
	digest, err := release.WriteImage(img, out, repository, tag)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: %s:%s (linux/%s, built with %s), commit %s\n", repository, tag, arch, runtime.Version(), st.Revision)
	fmt.Fprintf(os.Stderr, "  OCI layout %s, docker load -i %s\n", filepath.Join(out, release.LayoutDir), filepath.Join(out, release.TarballName))
	fmt.Println(digest)
	return nil
}
