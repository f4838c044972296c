// Package apiserver_test holds the Kubernetes API server faults of issue 16:
// kube-apiserver stopped and restarted (on a fixed CertDir, so its serving
// CA survives) in the middle of a convergence and of a deletion, watches
// resumed after an etcd compaction (410 Gone), and status writes that keep
// conflicting. `go test ./test/apiserver` runs the short forms; CHAOS_FULL=1
// (make test-chaos) the full ones.
package apiserver_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

const (
	clientID     = "apiserver-client"
	clientSecret = "apiserver-secret-6a2e8c4f1b3d5a79"
)

var (
	suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret, Timeout: 3 * time.Minute, LeakCheck: true}
	// rec records the operator's requests for the final secret scan.
	rec = suite.NewRecorder("", nil)
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apiserver-certs-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	suite.ControlPlane.CertDir = dir
	suite.ControlPlane.APIServerStopTimeout = 2 * time.Second
	code := suite.Main(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
