// Package release builds what a release ships: the manager binary, statically
// and reproducibly, and an OCI image holding nothing but that binary,
// assembled with go-containerregistry (no container engine, no registry).
// The same commit built with the same Go toolchain gives the same bytes and
// so the same image digest, wherever it is built.
package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const (
	// Repository is where the project publishes the image; install.yaml and
	// the chart name it unless told otherwise.
	Repository = "ghcr.io/aepoperator/capillary-operator"
	// Source is the project's repository, for the image's annotations.
	Source = "https://github.com/aepoperator/capillary-operator"

	versionPackage = "github.com/aepoperator/capillary-operator/internal/version"
)

// Stamp is what identifies a build: the release name, the commit and the
// commit's time, which stands in for every timestamp in the artefacts.
type Stamp struct {
	Version  string
	Revision string
	Time     time.Time
}

// ReadStamp reads the stamp of the checkout at dir from git: Version is
// `git describe --tags --always --dirty --abbrev=12` (a fixed length: the
// shortest unique one depends on the clone), Revision the HEAD commit, Time the
// committer date of HEAD, or SOURCE_DATE_EPOCH when that is set.
func ReadStamp(ctx context.Context, dir string) (Stamp, error) {
	var st Stamp
	var err error
	if st.Revision, err = git(ctx, dir, "rev-parse", "HEAD"); err != nil {
		return st, err
	}
	if st.Version, err = git(ctx, dir, "describe", "--tags", "--always", "--dirty", "--abbrev=12"); err != nil {
		return st, err
	}
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		if epoch, err = git(ctx, dir, "log", "-1", "--format=%ct", "HEAD"); err != nil {
			return st, err
		}
	}
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return st, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", epoch, err)
	}
	st.Time = time.Unix(secs, 0).UTC()
	return st, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// LDFlags are the linker flags of a release build: no symbol table or DWARF,
// and the version stamp. The Dockerfile passes the same, with its build
// arguments in place of version and revision (a test holds it to that).
func LDFlags(version, revision string) string {
	return fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Revision=%s", versionPackage, version, versionPackage, revision)
}

// BuildArgs are the `go build` arguments of a release build of the manager
// (the main package in the current directory) to out. With CGO_ENABLED=0 the
// binary is static; -trimpath keeps the checkout's path out of it;
// -buildvcs=false keeps git's view of the tree out of it (the stamp says
// which commit it is), so a build from a source archive or in the Dockerfile,
// where there is no .git, gives the same bytes.
func BuildArgs(st Stamp, out string) []string {
	return []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + LDFlags(st.Version, st.Revision), "-o", out, "."}
}

// BuildEnv is the environment of a release build for linux/arch: the
// caller's (for PATH, HOME and the Go caches) with everything that changes
// the generated code fixed, so a developer's `go env -w` cannot leak in.
func BuildEnv(arch string) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch, "GOFLAGS=-mod=readonly", "GOEXPERIMENT="}
	// The instruction-set levels, at Go's defaults.
	env = append(env, "GOAMD64=v1", "GOARM64=v8.0", "GOARM=7", "GO386=sse2")
	return append(os.Environ(), env...)
}

// BuildManager builds the manager from the module at dir into out for
// linux/arch.
func BuildManager(ctx context.Context, dir, out, arch string, st Stamp) error {
	if st.Version == "" || st.Revision == "" {
		return errors.New("build the manager: the stamp needs a version and a revision")
	}
	cmd := exec.CommandContext(ctx, goCommand(), BuildArgs(st, out)...)
	cmd.Dir = dir
	cmd.Env = BuildEnv(arch)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(BuildArgs(st, out), " "), err, output.String())
	}
	return nil
}

// goCommand is the go command that runs this build: $GO when set (as the
// Makefile's GO), else go from PATH.
func goCommand() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}
