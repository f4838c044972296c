package controllers_test

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/localenv/leakcheck"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

const (
	clientID     = "suite-client"
	clientSecret = "suite-secret-0f9d8c7b6a5e4d3c"
)

var (
	// suite checks for leaked secrets with its own scan (secrets_test.go),
	// over logs, events and status.
	suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret}
	// logs collects everything the operator logs during the suite, for the
	// check that no secret or token ever appears in it.
	logs     = &leakcheck.Log{}
	nsSerial atomic.Int64
	// operatorsStarted counts the managers the suite ran.
	operatorsStarted atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// A fuzz worker runs only the fuzz target, which needs no cluster; starting
	// one per worker would stall fuzzing and leave processes behind.
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return m.Run()
	}
	logf.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true), zap.Level(zapDebug())))
	suite.Scan = scanIfOperatorRan
	return suite.Main(m)
}

// scanIfOperatorRan: the scan needs an operator to have run (not so with -run Unit).
func scanIfOperatorRan() error {
	if operatorsStarted.Load() == 0 {
		return nil
	}
	return scanForSecrets()
}

// startOperator runs a manager for one test, with fast timings.
func startOperator(t *testing.T, mutate ...func(*manager.Options)) *localenv.Manager {
	t.Helper()
	o := suite.Env.ManagerOptions()
	o.ResyncInterval = time.Hour
	o.AdobeQPS = 1000
	o.AdobeBurst = 1000
	o.HTTPClient = &http.Client{Transport: tokenRecorder}
	for _, f := range mutate {
		f(&o)
	}
	m, err := suite.Env.StartManager(o)
	if err != nil {
		t.Fatalf("start operator: %v", err)
	}
	operatorsStarted.Add(1)
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	})
	return m
}

// newNamespace gives a test its own namespace with the credentials Secret.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsSerial.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(strings.ReplaceAll(name, "_", "-"), "-")
	suite.CreateNamespace(t, name)
	return name
}

// objectsNamed lists the emulator's objects of kind whose name mentions the resource's UID.
func objectsOf(kind emulator.Kind, cs *v1alpha1.CapillarySource) []emulator.Object {
	var out []emulator.Object
	for _, o := range suite.Env.Emulator.Objects().Of(kind) {
		if strings.Contains(o.Name(), string(cs.UID)) {
			out = append(out, o)
		}
	}
	return out
}
