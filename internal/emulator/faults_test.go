package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFault503(t *testing.T) {
	v := newEnv(t, Options{})
	if err := v.emu.SetFaults(Faults{Rate503: 1, RetryAfter: 7 * time.Second, Operations: []string{OpSourceConnectionsCreate}}); err != nil {
		t.Fatal(err)
	}
	res := v.do(http.MethodPost, fsPath("/sourceConnections"), sourceConnectionBody("s"))
	mustStatus(t, "faulted create", res, http.StatusServiceUnavailable)
	if got := res.header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After = %q, want 7", got)
	}
	if res.errorType() != "FLOW-1103-503" || res.header.Get(HeaderEmulatorReason) != ReasonFault503 {
		t.Errorf("503 body/reason = %s / %q", res.body, res.header.Get(HeaderEmulatorReason))
	}
	if n := len(v.emu.Objects().SourceConnections); n != 0 {
		t.Errorf("a 503 committed %d source connections", n)
	}
	// Untargeted operations are untouched.
	mustStatus(t, "untargeted op", v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil), http.StatusOK)
	if got := v.emu.Calls().OpStatus(OpSourceConnectionsCreate, http.StatusServiceUnavailable); got != 1 {
		t.Errorf("counted 503s = %d, want 1", got)
	}
}

func TestFault429(t *testing.T) {
	v := newEnv(t, Options{Faults: Faults{Rate429: 1, Operations: []string{"flowSpecs.*"}}})
	res := v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil)
	mustStatus(t, "faulted get", res, http.StatusTooManyRequests)
	if got := res.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want the default 1", got)
	}
	mustStatus(t, "other group", v.do(http.MethodGet, fsPath("/connectionSpecs/"+CapillaryConnectionSpecID), nil), http.StatusOK)
}

func TestFaultIMS(t *testing.T) {
	v := newEnv(t, Options{})
	if err := v.emu.SetFaults(Faults{Rate503: 1, Operations: []string{OpIMSToken}}); err != nil {
		t.Fatal(err)
	}
	res := v.postForm(IMSTokenPath, map[string][]string{"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret}})
	mustStatus(t, "faulted token", res, http.StatusServiceUnavailable)
	if res.header.Get("Retry-After") == "" || res.json()["error"] == nil {
		t.Errorf("IMS 503 = %v %s, want Retry-After and an IMS error body", res.header, res.body)
	}
	if got := v.emu.Calls()[CallKey{Operation: OpIMSToken, Status: http.StatusServiceUnavailable, ClientID: testClientID}]; got != 1 {
		t.Errorf("calls = %v", v.emu.Calls())
	}
}

func TestFaultTokenExpiry(t *testing.T) {
	v := newEnv(t, Options{Faults: Faults{RateTokenExpiry: 1, Operations: []string{OpFlowsList}}})
	res := v.do(http.MethodGet, fsPath("/flows"), nil)
	mustStatus(t, "faulted list", res, http.StatusUnauthorized)
	if res.gatewayCode() != "401013" {
		t.Errorf("error_code = %q, want 401013", res.gatewayCode())
	}
	// The token really expired: untargeted operations refuse it too.
	mustStatus(t, "same token elsewhere", v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil), http.StatusUnauthorized)
	v.token = v.fetchToken(testClientID, testSecret)
	mustStatus(t, "new token elsewhere", v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil), http.StatusOK)
}

// The trap a naive operator falls into: the create succeeded, the caller
// cannot know.
func TestLostResponseCommits(t *testing.T) {
	for _, mode := range []LostMode{LostMode500, LostModeDrop} {
		t.Run(string(mode), func(t *testing.T) {
			v := newEnv(t, Options{})
			if err := v.emu.SetFaults(Faults{RateLostResponse: 1, LostMode: mode, Operations: []string{OpSourceConnectionsCreate}}); err != nil {
				t.Fatal(err)
			}
			req := v.newRequest(http.MethodPost, fsPath("/sourceConnections"), sourceConnectionBody("lost"))
			res, err := http.DefaultClient.Do(req)
			switch mode {
			case LostMode500:
				if err != nil {
					t.Fatalf("request error = %v", err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusInternalServerError {
					t.Errorf("status = %d, want 500", res.StatusCode)
				}
			case LostModeDrop:
				if err == nil {
					res.Body.Close()
					t.Fatalf("got status %d, want the connection dropped", res.StatusCode)
				}
			}
			snap := v.emu.Objects()
			if len(snap.SourceConnections) != 1 || snap.SourceConnections[0].Name() != "lost" {
				t.Fatalf("stored source connections = %+v, want the committed one", snap.SourceConnections)
			}
			// The object is visible to the caller's next list.
			list := v.do(http.MethodGet, fsPath("/sourceConnections?property=name==lost"), nil)
			if n := len(list.items()); n != 1 {
				t.Errorf("list finds %d, want 1", n)
			}
			want := http.StatusInternalServerError
			if mode == LostModeDrop {
				want = StatusDropped
			}
			if got := v.emu.Calls().OpStatus(OpSourceConnectionsCreate, want); got != 1 {
				t.Errorf("calls with status %d = %d, want 1 (%v)", want, got, v.emu.Calls())
			}
		})
	}
}

func TestLatencyUsesInjectedSleep(t *testing.T) {
	var mu sync.Mutex
	var slept []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		return nil
	}
	v := newEnv(t, Options{Sleep: sleep, Faults: Faults{Seed: 3, Latency: 2 * time.Second, Jitter: time.Second, Operations: []string{OpFlowSpecsGet}}})
	for range 5 {
		mustStatus(t, "get", v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil), http.StatusOK)
	}
	mustStatus(t, "untargeted", v.do(http.MethodGet, fsPath("/connectionSpecs/"+CapillaryConnectionSpecID), nil), http.StatusOK)
	mu.Lock()
	defer mu.Unlock()
	if len(slept) != 5 {
		t.Fatalf("slept %d times, want 5 (targeted calls only)", len(slept))
	}
	for _, d := range slept {
		if d < 2*time.Second || d >= 3*time.Second {
			t.Errorf("delay %v outside [2s, 3s)", d)
		}
	}
}

// statusSequence sends n identical requests to a fresh emulator.
func statusSequence(t *testing.T, f Faults, n int) []int {
	t.Helper()
	v := newEnv(t, Options{Faults: f})
	out := make([]int, n)
	for i := range out {
		out[i] = v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil).status
	}
	return out
}

func TestFaultsDeterministic(t *testing.T) {
	f := Faults{Seed: 42, Rate503: 0.3, Rate429: 0.2, Operations: []string{OpFlowSpecsGet}}
	first := statusSequence(t, f, 40)
	if d := cmp.Diff(first, statusSequence(t, f, 40)); d != "" {
		t.Errorf("same seed, different faults (-first +second):\n%s", d)
	}
	seen := map[int]bool{}
	for _, s := range first {
		seen[s] = true
	}
	if !seen[http.StatusOK] || !seen[http.StatusServiceUnavailable] || !seen[http.StatusTooManyRequests] {
		t.Errorf("40 calls at 30%%/20%% fault rates gave statuses %v, want all of 200, 503, 429", seen)
	}
	f.Seed = 43
	if cmp.Equal(first, statusSequence(t, f, 40)) {
		t.Errorf("seeds 42 and 43 gave the same 40 outcomes")
	}
}

func TestFaultsValidate(t *testing.T) {
	cases := []struct {
		name    string
		f       Faults
		wantErr bool
	}{
		{"zero", Faults{}, false},
		{"all rates", Faults{Rate503: 0.2, Rate429: 0.3, RateLostResponse: 0.5}, false},
		{"rate above 1", Faults{Rate503: 1.5}, true},
		{"negative rate", Faults{Rate429: -0.1}, true},
		{"rates sum above 1", Faults{Rate503: 0.6, Rate429: 0.6}, true},
		{"negative latency", Faults{Latency: -time.Second}, true},
		{"unknown lost mode", Faults{LostMode: "explode"}, true},
		{"unknown operation", Faults{Operations: []string{"flows.explode"}}, true},
		{"operation group", Faults{Operations: []string{"targetConnections.*", "*"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
	if _, err := New(Options{Faults: Faults{Rate503: 2}}); err == nil {
		t.Errorf("New accepted invalid faults")
	}
}

func TestFaultsJSON(t *testing.T) {
	in := Faults{Seed: 9, Latency: 250 * time.Millisecond, Jitter: time.Second, Rate503: 0.1, RetryAfter: 3 * time.Second,
		Rate429: 0.05, RateLostResponse: 0.2, LostMode: LostModeDrop, RateTokenExpiry: 0.1, Operations: []string{"flows.*"}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seed", "latency", "jitter", "rate503", "retryAfter", "rate429", "rateLostResponse", "lostMode", "rateTokenExpiry", "operations"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("JSON form %s has no %q", data, k)
		}
	}
	if keys["latency"] != "250ms" {
		t.Errorf("latency = %v, want \"250ms\"", keys["latency"])
	}
	var out Faults
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in, out); d != "" {
		t.Errorf("round trip (-in +out):\n%s", d)
	}
	if err := json.Unmarshal([]byte(`{"latency":"soon"}`), &out); err == nil {
		t.Errorf("accepted an invalid duration")
	}
	if err := json.Unmarshal([]byte(`{"rate_503":0.5}`), &out); err == nil {
		t.Errorf("accepted an unknown field")
	}
}
