// Package controlplane runs a local Kubernetes control plane (envtest's
// kube-apiserver and etcd) with the operator's CRDs installed. Integration
// tests, the demo and the benchmark all start their cluster through it.
package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubernetesVersion is the version of the envtest binaries hack/setup-envtest.sh builds.
const KubernetesVersion = "1.37.2"

// ErrNoBinaries reports that kube-apiserver or etcd is not built yet.
var ErrNoBinaries = errors.New("envtest binaries not found: run `make envtest` (it builds kube-apiserver and etcd from the Go module proxy)")

// AssetsDir is where the envtest binaries live: $KUBEBUILDER_ASSETS when set,
// otherwise setup-envtest's own store, which hack/setup-envtest.sh fills.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "kubebuilder-envtest", "k8s", fmt.Sprintf("%s-%s-%s", KubernetesVersion, runtime.GOOS, runtime.GOARCH))
}

// BinariesPresent says whether both binaries are in AssetsDir.
func BinariesPresent() bool {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if fi, err := os.Stat(filepath.Join(AssetsDir(), b)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// RepoRoot finds the repository root (the folder with go.mod) above the
// working directory, so tests in any package find config/.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// ControlPlane is a running kube-apiserver and etcd with the CRDs installed.
type ControlPlane struct {
	env *envtest.Environment
	// Config reaches the apiserver as an administrator.
	Config *rest.Config
}

// Options tune Start.
type Options struct {
	// CRDDir holds the CRDs to install; default <repo>/config/crd/bases.
	CRDDir string
	// ExtraAPIServerFlags are set on kube-apiserver (flag name without dashes).
	ExtraAPIServerFlags map[string]string
}

// Start boots the control plane and installs the CRDs.
func Start(opts Options) (*ControlPlane, error) {
	if !BinariesPresent() {
		return nil, ErrNoBinaries
	}
	crdDir := opts.CRDDir
	if crdDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		crdDir = filepath.Join(root, "config", "crd", "bases")
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: AssetsDir(),
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
	}
	if len(opts.ExtraAPIServerFlags) > 0 {
		args := env.ControlPlane.GetAPIServer().Configure()
		for k, v := range opts.ExtraAPIServerFlags {
			args.Set(k, v)
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest control plane: %w", err)
	}
	return &ControlPlane{env: env, Config: cfg}, nil
}

// KubeconfigBytes returns a kubeconfig for an administrator of this control plane.
func (c *ControlPlane) KubeconfigBytes() ([]byte, error) {
	user, err := c.env.ControlPlane.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("add admin user: %w", err)
	}
	return user.KubeConfig()
}

// Stop shuts the control plane down and removes its temporary files.
func (c *ControlPlane) Stop() error {
	if c == nil || c.env == nil {
		return nil
	}
	return c.env.Stop()
}
