package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aepoperator/capillary-operator/internal/emulator"
)

func TestParseFlags(t *testing.T) {
	var out bytes.Buffer
	c, err := parseFlags([]string{
		"--seed", "7", "--latency", "20ms", "--jitter", "5ms", "--rate-503", "0.1", "--retry-after", "3s",
		"--rate-429", "0.05", "--rate-lost", "0.2", "--lost-mode", "drop", "--rate-token-expiry", "0.01",
		"--fault-ops", "flows.create, sourceConnections.*",
		"--credential", "a:b", "--credential", "c:d", "--sandbox", "prod",
		"--connection-auth", "hmac", "--hmac-secret-overlap", "5m", "--inlet-warmup", "30s",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := emulator.Faults{Seed: 7, Latency: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Rate503: 0.1,
		RetryAfter: 3 * time.Second, Rate429: 0.05, RateLostResponse: 0.2, LostMode: emulator.LostModeDrop,
		RateTokenExpiry: 0.01, Operations: []string{"flows.create", "sourceConnections.*"}}
	if d := cmp.Diff(want, c.faults); d != "" {
		t.Errorf("faults (-want +got):\n%s", d)
	}
	if c.connectionAuth != emulator.ConnectionAuthHMAC || c.hmacOverlap != 5*time.Minute {
		t.Errorf("connection auth = %q, overlap %v", c.connectionAuth, c.hmacOverlap)
	}
	if c.inletWarmup != 30*time.Second {
		t.Errorf("inlet warm-up = %v, want 30s", c.inletWarmup)
	}
	if d, _ := parseFlags(nil, &out); d.connectionAuth != emulator.ConnectionAuthNone || d.hmacOverlap != 0 || d.inletWarmup != 0 {
		t.Errorf("defaults: connection auth = %q, overlap %v; want none, 0", d.connectionAuth, d.hmacOverlap)
	}
	creds, err := readCredentials(c)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": "b", "c": "d"}, creds); d != "" {
		t.Errorf("credentials (-want +got):\n%s", d)
	}

	for _, bad := range [][]string{
		{"--rate-503", "1.5"},
		{"--lost-mode", "sometimes"},
		{"--fault-ops", "flows.explode"},
		{"--connection-auth", "basic"},
		{"--hmac-secret-overlap", "-1s"},
		{"--inlet-warmup", "-1s"},
		{"stray"},
	} {
		if _, err := parseFlags(bad, &out); err == nil {
			t.Errorf("parseFlags(%q) accepted it", bad)
		}
	}
	c, _ = parseFlags([]string{"--credential", "no-secret"}, &out)
	if _, err := readCredentials(c); err == nil || strings.Contains(err.Error(), "no-secret") {
		t.Errorf("malformed credential: err = %v, want an error that does not echo it", err)
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: err = %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"addr", "allow-remote", "base-url", "credential", "credentials-file", "token-lifetime",
		"spec-dir", "no-spec", "state-file", "seed", "latency", "jitter", "rate-503", "retry-after", "rate-429",
		"rate-lost", "lost-mode", "rate-token-expiry", "fault-ops", "unentitled-org", "sandbox", "reject-dataset",
		"reject-mapping", "log-level", "connection-auth", "hmac-secret-overlap", "inlet-warmup"} {
		if !strings.Contains(out.String(), "-"+name+" ") && !strings.Contains(out.String(), "-"+name+"\n") {
			t.Errorf("--help does not document --%s", name)
		}
	}
	if !strings.Contains(out.String(), emulator.OpFlowsCreate) {
		t.Errorf("--help does not list the operation names")
	}
}
