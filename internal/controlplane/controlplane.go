// Package controlplane runs a local Kubernetes control plane (envtest's
// kube-apiserver and etcd) with the operator's CRDs installed. Integration
// tests, the demo and the benchmark all start their cluster through it.
package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

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
	// CertDir, when set, is where kube-apiserver keeps its serving
	// certificates; a fixed one lets StopAPIServer and StartAPIServer restart
	// it with the same CA (the caller removes the directory).
	CertDir string
	// APIServerStopTimeout bounds a graceful stop of kube-apiserver (it waits
	// for open watches, about 20s by default); past it, the process is
	// killed, as in a crash. Zero keeps envtest's default.
	APIServerStopTimeout time.Duration
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
	if opts.CertDir != "" {
		env.ControlPlane.GetAPIServer().CertDir = opts.CertDir
	}
	if opts.APIServerStopTimeout > 0 {
		env.ControlPlane.GetAPIServer().StopTimeout = opts.APIServerStopTimeout
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

// StopAPIServer stops kube-apiserver alone; etcd keeps running. Clients
// see connections refused until StartAPIServer. A stop that outlasts
// Options.APIServerStopTimeout ends with the process killed, which is not
// an error here.
func (c *ControlPlane) StopAPIServer() error {
	err := c.env.ControlPlane.GetAPIServer().Stop()
	if err != nil && strings.HasPrefix(err.Error(), "timeout waiting for process") {
		return nil
	}
	return err
}

// StartAPIServer starts kube-apiserver again on the same port, with the same
// certificates when Options.CertDir was set, and waits until it is healthy.
func (c *ControlPlane) StartAPIServer() error {
	return c.env.ControlPlane.GetAPIServer().Start()
}

// CompactEtcd compacts etcd's history up to its current revision, as its
// periodic compaction does: a watch resumed from an older resource version
// is answered 410 Gone. It answers the revision compacted at.
func (c *ControlPlane) CompactEtcd(ctx context.Context) (int64, error) {
	etcdURL := c.env.ControlPlane.Etcd.URL
	if etcdURL == nil {
		return 0, errors.New("etcd is not running")
	}
	var head struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	// etcd's JSON gateway: keys are base64; "AA==" is the key "\x00".
	if err := postJSON(ctx, etcdURL.String()+"/v3/kv/range", `{"key":"AA=="}`, &head); err != nil {
		return 0, fmt.Errorf("read etcd's revision: %w", err)
	}
	rev, err := strconv.ParseInt(head.Header.Revision, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("etcd revision %q: %w", head.Header.Revision, err)
	}
	if err := postJSON(ctx, etcdURL.String()+"/v3/kv/compaction", fmt.Sprintf(`{"revision":"%d","physical":true}`, rev), nil); err != nil {
		return 0, fmt.Errorf("compact etcd at %d: %w", rev, err)
	}
	return rev, nil
}

func postJSON(ctx context.Context, url, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Stop shuts the control plane down and removes its temporary files.
func (c *ControlPlane) Stop() error {
	if c == nil || c.env == nil {
		return nil
	}
	return c.env.Stop()
}
