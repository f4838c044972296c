package chaos_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/test/security/leakcheck"
)

const (
	orgID        = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
	clientID     = "chaos-client"
	clientSecret = "chaos-secret-5b1e9a7c3d2f4e6a"
)

var (
	env  *localenv.Env
	rec  = leakcheck.NewRecorder(nil)
	logs *leakcheck.Log
	hist *leakcheck.History
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	logs = leakcheck.CaptureLogs(nil)
	rec.AddSecret(leakcheck.KindClientSecret, clientSecret)
	var err error
	env, err = localenv.Start(localenv.Options{
		Emulator:         emulator.Options{Credentials: map[string]string{clientID: clientSecret}},
		ValidateRequests: specsAvailable(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local environment:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if hist, err = leakcheck.WatchSources(env.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	hist.Stop()
	if code != 0 || len(rec.Requests()) == 0 {
		return code // nothing ran, or it already failed
	}
	findings, err := leakcheck.Scan(context.Background(), env.Client, rec, logs, hist)
	if err != nil {
		fmt.Fprintln(os.Stderr, "secret scan:", err)
		return 1
	}
	if len(findings) > 0 {
		fmt.Fprintln(os.Stderr, "secret scan: credentials leaked:")
		for _, f := range findings {
			fmt.Fprintln(os.Stderr, "  ", f)
		}
		return 1
	}
	fmt.Println(leakcheck.Summary(rec, logs, hist))
	return 0
}

// specsAvailable: Adobe's OpenAPI specs check every request when they are
// beside the repository; in CI they must be.
func specsAvailable() bool {
	if os.Getenv("CI") == "true" {
		return true
	}
	_, err := aepspec.Dir()
	return err == nil
}
