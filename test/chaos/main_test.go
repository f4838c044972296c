package chaos_test

import (
	"os"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

const (
	clientID     = "chaos-client"
	clientSecret = "chaos-secret-5b1e9a7c3d2f4e6a"
)

var (
	suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret}
	// rec records the operator's requests for the final secret scan.
	rec = suite.NewRecorder("", nil)
)

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }
