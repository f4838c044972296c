// Package reliability_test holds the reliability scenarios of issue 16 that
// run against one control plane and the Adobe emulator: a namespace torn
// down with its sources in it, an IMS token revoked mid-flight, a long Adobe
// outage, and status writes that keep conflicting. Each asserts counts and
// prints them. `go test ./test/reliability` runs the short forms;
// CHAOS_FULL=1 (make test-chaos) the full ones.
package reliability_test

import (
	"os"
	"testing"
	"time"

	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

const (
	clientID     = "reliability-client"
	clientSecret = "reliability-secret-3e9c1a7f5b2d4c6e"
)

var (
	suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret, Timeout: 2 * time.Minute, LeakCheck: true}
	// rec records the operator's requests for the final secret scan.
	rec = suite.NewRecorder("", nil)
)

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }
