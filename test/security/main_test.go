// Package security_test checks the operator's security properties: the
// generated RBAC is pinned and sufficient, endpoints are HTTPS with TLS
// verification (plain HTTP only to a loopback emulator, by explicit flag),
// nothing in a CapillarySource can point the operator elsewhere, no
// credential travels in a URL, and no client secret or token reaches logs,
// events or status.
package security_test

import (
	"os"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

const (
	clientID     = "security-client"
	clientSecret = "security-secret-3e7a9c1b5d2f4a6e"
)

var suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret}

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }
