package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aepoperator/capillary-operator/internal/aepspec/aepspectest"
)

type rejectAll struct{}

func (rejectAll) ValidateRequest(*http.Request) error {
	return errors.New("body does not match schema X")
}

func TestSpecValidation(t *testing.T) {
	t.Run("fake validator", func(t *testing.T) {
		v := newEnv(t, Options{SpecValidator: rejectAll{}})
		res := v.do(http.MethodPost, fsPath("/sourceConnections"), sourceConnectionBody("s"))
		mustStatus(t, "rejected request", res, http.StatusBadRequest)
		if res.header.Get(HeaderEmulatorReason) != ReasonSpecViolation {
			t.Errorf("reason header = %q", res.header.Get(HeaderEmulatorReason))
		}
		if msg, _ := res.json()["errorMessage"].(string); !strings.Contains(msg, "body does not match schema X") {
			t.Errorf("errorMessage %q does not carry the validation error", msg)
		}
		// Gateway checks come first: an unauthenticated caller learns nothing about its body.
		res = v.do(http.MethodPost, fsPath("/sourceConnections"), sourceConnectionBody("s"), withHeader("Authorization", ""))
		mustStatus(t, "no token", res, http.StatusForbidden)
		// IMS is not a Platform API and is not validated.
		v.fetchToken(testClientID, testSecret)
	})

	t.Run("Adobe spec", func(t *testing.T) {
		v := newEnv(t, Options{SpecValidator: aepspectest.Validator(t)})
		c := v.createAll("validated")
		// CAP-API's suspect example sends connection IDs as strings.
		body := flowBody("strings", c.source, c.target, "")
		body["sourceConnectionIds"] = c.source
		res := v.do(http.MethodPost, fsPath("/flows"), body)
		mustStatus(t, "non-conforming flow", res, http.StatusBadRequest)
		if res.header.Get(HeaderEmulatorReason) != ReasonSpecViolation {
			t.Errorf("reason header = %q, want %q (body %s)", res.header.Get(HeaderEmulatorReason), ReasonSpecViolation, res.body)
		}
		res = v.do(http.MethodPost, fsPath("/sourceConnections"), map[string]any{"name": "no spec"})
		mustStatus(t, "source connection without connectionSpec", res, http.StatusBadRequest)
		if res.header.Get(HeaderEmulatorReason) != ReasonSpecViolation {
			t.Errorf("reason header = %q, want %q", res.header.Get(HeaderEmulatorReason), ReasonSpecViolation)
		}
	})
}

func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	v := newEnv(t, Options{StateFile: path})
	c := v.createAll("persisted")
	mustStatus(t, "disable", v.do(http.MethodPost, fsPath("/flows/"+c.flow+"/action?op=disable"), nil), http.StatusOK)
	mustStatus(t, "update mapping", v.do(http.MethodPut, dpPath("/mappingSets/"+c.mapping), mappingSetBody("a.b")), http.StatusOK)
	before := v.emu.Objects()
	if err := v.emu.Close(); err != nil {
		t.Fatal(err)
	}

	w := newEnv(t, Options{StateFile: path})
	if d := cmp.Diff(before, w.emu.Objects()); d != "" {
		t.Fatalf("objects after restart (-before +after):\n%s", d)
	}
	res := w.do(http.MethodGet, fsPath("/flows/"+c.flow), nil)
	mustStatus(t, "GET after restart", res, http.StatusOK)
	if st := res.items()[0]["state"]; st != "disabled" {
		t.Errorf("state after restart = %v", st)
	}
	if ms, _ := w.do(http.MethodGet, dpPath("/mappingSets/"+c.mapping+"?version=0"), nil).json()["mappings"].([]any); len(ms) != 2 {
		t.Errorf("mapping set history lost: version 0 has %d mappings, want 2", len(ms))
	}
	// New objects do not collide with restored ones, and order is kept.
	d := w.createAll("after restart")
	snap := w.emu.Objects()
	if len(snap.Flows) != 2 || snap.Flows[0].ID != c.flow || snap.Flows[1].ID != d.flow {
		t.Errorf("flows after restart = %v", snap.Flows)
	}
	// Tokens are not persisted.
	old := v.token
	w.token = old
	mustStatus(t, "old token after restart", w.do(http.MethodGet, fsPath("/flows"), nil), http.StatusUnauthorized)

	if _, err := New(Options{StateFile: filepath.Join(t.TempDir(), "absent.json")}); err != nil {
		t.Errorf("a missing state file is an error: %v", err)
	}
}

func TestVanishAndModify(t *testing.T) {
	v := newEnv(t, Options{})
	c := v.createAll("oob")

	if !v.emu.Modify(KindFlow, c.flow, func(doc map[string]any) { doc["state"] = "disabled" }) {
		t.Fatal("Modify found no flow")
	}
	got := v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil).items()[0]
	if got["state"] != "disabled" || got["etag"] == c.flowETag {
		t.Errorf("after Modify state/etag = %v/%v, want disabled and a new etag", got["state"], got["etag"])
	}
	res := v.do(http.MethodPatch, fsPath("/flows/"+c.flow), []any{map[string]any{"op": "replace", "path": "/name", "value": "x"}}, withHeader("If-Match", c.flowETag))
	mustStatus(t, "PATCH with the pre-drift etag", res, http.StatusPreconditionFailed)

	// Out-of-band deletion ignores references, like a user in the Adobe UI.
	if !v.emu.Vanish(KindSourceConnection, c.source) {
		t.Fatal("Vanish found no source connection")
	}
	mustStatus(t, "GET vanished", v.do(http.MethodGet, fsPath("/sourceConnections/"+c.source), nil), http.StatusNotFound)
	if !v.emu.Vanish(KindFlow, c.flow) {
		t.Fatal("Vanish found no flow")
	}
	mustStatus(t, "GET vanished flow", v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil), http.StatusNotFound)
	if v.emu.Vanish(KindFlow, c.flow) {
		t.Errorf("Vanish of a missing flow reported true")
	}
	if v.emu.Calls().Op(OpFlowsDelete) != 0 {
		t.Errorf("Vanish counted as a call")
	}
}

func TestCallCounts(t *testing.T) {
	v := newEnv(t, Options{Credentials: map[string]string{testClientID: testSecret, "client-b": "secret-b"}})
	b := v.in(testOrg, testSandbox)
	b.clientID = "client-b"
	b.token = v.fetchToken("client-b", "secret-b")

	v.createAll("a")
	b.do(http.MethodGet, fsPath("/flows/"+newUUID()), nil)
	v.do(http.MethodGet, fsPath("/flows"), nil, withHeader("Authorization", "Bearer nope"))

	calls := v.emu.Calls()
	want := map[CallKey]int{
		{OpIMSToken, http.StatusOK, testClientID}:                     1,
		{OpIMSToken, http.StatusOK, "client-b"}:                       1,
		{OpSourceConnectionsCreate, http.StatusCreated, testClientID}: 1,
		{OpTargetConnectionsCreate, http.StatusCreated, testClientID}: 1,
		{OpMappingSetsCreate, http.StatusOK, testClientID}:            1,
		{OpFlowsCreate, http.StatusCreated, testClientID}:             1,
		{OpFlowsGet, http.StatusNotFound, "client-b"}:                 1,
		{OpFlowsList, http.StatusUnauthorized, testClientID}:          1,
	}
	if d := cmp.Diff(want, map[CallKey]int(calls)); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
	if calls.Client("client-b") != 2 || calls.Total() != 8 || calls.Op(OpFlowsCreate) != 1 {
		t.Errorf("Client/Total/Op = %d/%d/%d", calls.Client("client-b"), calls.Total(), calls.Op(OpFlowsCreate))
	}
	v.emu.ResetCalls()
	if n := v.emu.Calls().Total(); n != 0 {
		t.Errorf("after ResetCalls total = %d", n)
	}
}

func TestIntrospectionEndpoint(t *testing.T) {
	v := newEnv(t, Options{})
	c := v.createAll("introspected")
	get := func(path string, out any) {
		t.Helper()
		res := v.send(mustReq(t, http.MethodGet, v.url+path, ""))
		mustStatus(t, path, res, http.StatusOK)
		if err := json.Unmarshal(res.body, out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}

	var snap Snapshot
	get(IntrospectPrefix+"/state", &snap)
	if len(snap.Flows) != 1 || snap.Flows[0].ID != c.flow || snap.Flows[0].Org != testOrg {
		t.Errorf("state flows = %+v", snap.Flows)
	}

	var calls []CallCount
	get(IntrospectPrefix+"/calls", &calls)
	if len(calls) == 0 || calls[0].Count == 0 {
		t.Errorf("calls = %+v", calls)
	}

	res := v.send(mustReq(t, http.MethodPost, v.url+IntrospectPrefix+"/faults", `{"seed":1,"rate503":1,"retryAfter":"2s","operations":["flows.get"]}`))
	mustStatus(t, "POST faults", res, http.StatusOK)
	mustStatus(t, "faulted after POST faults", v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil), http.StatusServiceUnavailable)
	if f := v.emu.Faults(); f.RetryAfter != 2*time.Second || f.Rate503 != 1 {
		t.Errorf("Faults() = %+v", f)
	}
	res = v.send(mustReq(t, http.MethodPost, v.url+IntrospectPrefix+"/faults", `{"rate503":3}`))
	mustStatus(t, "invalid faults", res, http.StatusBadRequest)
	mustStatus(t, "clear faults", v.send(mustReq(t, http.MethodPost, v.url+IntrospectPrefix+"/faults", `{}`)), http.StatusOK)

	mustStatus(t, "expire tokens", v.send(mustReq(t, http.MethodPost, v.url+IntrospectPrefix+"/expire-tokens", "")), http.StatusNoContent)
	mustStatus(t, "expired token", v.do(http.MethodGet, fsPath("/flows"), nil), http.StatusUnauthorized)
	v.token = v.fetchToken(testClientID, testSecret)

	mustStatus(t, "vanish", v.send(mustReq(t, http.MethodDelete, v.url+IntrospectPrefix+"/objects/flows/"+c.flow, "")), http.StatusNoContent)
	mustStatus(t, "vanished flow", v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil), http.StatusNotFound)
	mustStatus(t, "vanish unknown kind", v.send(mustReq(t, http.MethodDelete, v.url+IntrospectPrefix+"/objects/bases/x", "")), http.StatusBadRequest)

	mustStatus(t, "reset calls", v.send(mustReq(t, http.MethodDelete, v.url+IntrospectPrefix+"/calls", "")), http.StatusNoContent)
	if v.emu.Calls().Total() != 0 {
		t.Errorf("introspection requests were counted")
	}
}

func mustReq(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func TestStart(t *testing.T) {
	emu, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if _, err := emu.Start(addr); err == nil {
			t.Errorf("Start(%q) succeeded, want a refusal of non-loopback addresses", addr)
		}
	}
	url, err := emu.Start("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || emu.URL() != url {
		t.Errorf("Start() = %q, URL() = %q", url, emu.URL())
	}
	if _, err := emu.Start(""); err == nil {
		t.Errorf("second Start succeeded")
	}
	res, err := http.Get(url + IntrospectPrefix + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := emu.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	if _, err := http.Get(url + IntrospectPrefix + "/healthz"); err == nil {
		t.Errorf("emulator still serving after Shutdown")
	}
}

// An Emulator is an http.Handler: served by httptest, inlet URLs follow the
// request's host.
func TestAsHandler(t *testing.T) {
	emu, err := New(Options{Credentials: map[string]string{testClientID: testSecret}, BaseURL: "https://emulator.example"})
	if err != nil {
		t.Fatal(err)
	}
	v := &env{t: t, emu: emu, clientID: testClientID, org: testOrg, sandbox: testSandbox}
	srv := newHTTPTestServer(t, emu)
	v.url = srv
	v.token = v.fetchToken(testClientID, testSecret)
	c := v.createAll("handler")
	inlet, _ := v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil).items()[0]["options"].(map[string]any)["inletUrl"].(string)
	if !strings.HasPrefix(inlet, "https://emulator.example/collection/") {
		t.Errorf("inletUrl = %q, want it under BaseURL", inlet)
	}
}

func TestConcurrentCreates(t *testing.T) {
	v := newEnv(t, Options{})
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.DefaultClient.Do(v.newRequest(http.MethodPost, fsPath("/sourceConnections"), sourceConnectionBody("c")))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(res.Body).Decode(&body)
			ids[i], _ = body["id"].(string)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Fatalf("ids = %v, want %d distinct", ids, n)
		}
		seen[id] = true
	}
	if got := len(v.emu.Objects().SourceConnections); got != n {
		t.Errorf("stored %d, want %d", got, n)
	}
	if got := v.emu.Calls().OpStatus(OpSourceConnectionsCreate, http.StatusCreated); got != n {
		t.Errorf("counted %d creates, want %d", got, n)
	}
}
