// Package deploy_test checks what users deploy and watch: config/default and
// the Helm chart are valid for Kubernetes 1.37 (server-side dry run against a
// real kube-apiserver) and hardened, the chart matches config/default, the
// Argo CD health check gives the right verdict on objects from real
// reconciles, and the Grafana dashboard queries only metrics the operator has.
package deploy_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
)

// The credential the emulator accepts in this package.
const (
	clientID     = "deploy-test-client"
	clientSecret = "deploy-test-secret-5e1c0b"
)

var (
	root string
	// env is one control plane and emulator for the whole package; nil when
	// the envtest binaries are missing (outside CI those tests skip).
	env *localenv.Env
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if root, err = controlplane.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Only the operator's errors: its progress would drown the test output.
	log.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	if controlplane.BinariesPresent() {
		env, err = localenv.Start(localenv.Options{
			Emulator: emulator.Options{Credentials: map[string]string{clientID: clientSecret}},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start local environment:", err)
			return 1
		}
		defer func() { _ = env.Stop() }()
	}
	return m.Run()
}

// needEnv skips a test that needs the control plane when the envtest
// binaries are missing, except in CI where they must be there.
func needEnv(t *testing.T) {
	t.Helper()
	if env != nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(controlplane.ErrNoBinaries)
	}
	t.Skip(controlplane.ErrNoBinaries)
}
