// Package emulatortest starts the Adobe emulator for tests in other packages.
package emulatortest

import (
	"testing"

	"github.com/aepoperator/capillary-operator/internal/emulator"
)

// The credential Start accepts when Options.Credentials is empty.
const (
	ClientID     = "test-client"
	ClientSecret = "test-secret"
)

// Start serves an emulator on a loopback port until the test ends and
// returns it with its base URL (the IMS URL and the Platform URL alike).
// Without Options.Credentials it accepts ClientID/ClientSecret.
func Start(t testing.TB, opts emulator.Options) (*emulator.Emulator, string) {
	t.Helper()
	if len(opts.Credentials) == 0 {
		opts.Credentials = map[string]string{ClientID: ClientSecret}
	}
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatalf("create Adobe emulator: %v", err)
	}
	url, err := emu.Start("")
	if err != nil {
		t.Fatalf("start Adobe emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := emu.Close(); err != nil {
			t.Errorf("close Adobe emulator: %v", err)
		}
	})
	return emu, url
}
