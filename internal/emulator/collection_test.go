package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"
)

const otherClientID, otherSecret = "client-b", "secret-b"

// chain is one full set of objects of an authenticated (or not) source.
type chain struct {
	created
	base  string
	inlet string // path of the inlet URL, /collection/{id}
}

// createChain creates, in the operator's order, the base connection when the
// variant needs one, then the source, target, mapping set and flow.
func (v *env) createChain(name string, a ConnectionAuth) chain {
	v.t.Helper()
	var c chain
	if a != ConnectionAuthNone {
		c.base, _ = v.mustCreate(fsPath("/connections"), validBaseConnection(name+" base", a))
	}
	c.source, _ = v.mustCreate(fsPath("/sourceConnections"), sourceWithBase(name+" source", c.base))
	c.target, _ = v.mustCreate(fsPath("/targetConnections"), targetConnectionBody(name+" target", testDataset))
	res := v.do(http.MethodPost, dpPath("/mappingSets"), mappingSetBody("loyalty.points"))
	mustStatus(v.t, "POST mappingSets", res, http.StatusOK)
	c.mapping, _ = res.json()["id"].(string)
	c.flow, c.flowETag = v.mustCreate(fsPath("/flows"), flowBody(name, c.source, c.target, c.mapping))
	res = v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil)
	mustStatus(v.t, "GET flow", res, http.StatusOK)
	inlet, _ := Object{Doc: res.items()[0]}.Field("options.inletUrl").(string)
	c.inlet = strings.TrimPrefix(inlet, v.url)
	return c
}

// collectRequest builds an event post to an inlet: no Platform headers, only
// what the mods add.
func (v *env) collectRequest(path string, body []byte, mods ...func(*http.Request)) *http.Request {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.url+path, bytes.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, m := range mods {
		m(req)
	}
	return req
}

// problemType returns the type of a collection endpoint error body.
func (r response) problemType() string {
	t, _ := r.json()["type"].(string)
	return t
}

func withQuery(k, val string) func(*http.Request) {
	return func(r *http.Request) {
		q := r.URL.Query()
		q.Set(k, val)
		r.URL.RawQuery = q.Encode()
	}
}

var event = []byte(`{"eventName":"pointsIssued","customer":{"id":"c-1"},"points":10}`)

type collectCase struct {
	name       string
	body       []byte
	mods       []func(*http.Request)
	wantStatus int
	wantType   string
}

func runCollectCases(t *testing.T, v *env, path string, okStatus int, cases []collectCase) {
	t.Helper()
	for _, tc := range cases {
		body := tc.body
		if body == nil {
			body = event
		}
		res := v.send(v.collectRequest(path, body, tc.mods...))
		want := tc.wantStatus
		if want == 0 {
			want = okStatus
		}
		if res.status != want {
			t.Errorf("%s: status %d, want %d; body %s", tc.name, res.status, want, res.body)
			continue
		}
		if tc.wantType != "" && res.problemType() != tc.wantType {
			t.Errorf("%s: type = %q, want %q", tc.name, res.problemType(), tc.wantType)
		}
		if want == http.StatusUnauthorized && res.json()["status"] != "401" {
			t.Errorf("%s: status field = %v, want \"401\" as Adobe prints it", tc.name, res.json()["status"])
		}
	}
}

func TestCollectionOAuth2(t *testing.T) {
	v := newEnv(t, Options{ConnectionAuth: ConnectionAuthOAuth2,
		Credentials: map[string]string{testClientID: testSecret, otherClientID: otherSecret}})
	c := v.createChain("oauth", ConnectionAuthOAuth2)
	token := v.fetchToken(testClientID, testSecret)
	expired := v.fetchToken(testClientID, testSecret)
	v.emu.expireToken(expired)
	other := v.fetchToken(otherClientID, otherSecret)
	flow := withHeader(HeaderFlowID, c.flow)
	bearer := func(tok string) func(*http.Request) { return withHeader("Authorization", "Bearer "+tok) }

	cases := []collectCase{
		{name: "bearer token of the connection's credential", mods: []func(*http.Request){bearer(token), flow}},
		{name: "flow ID as a query parameter", mods: []func(*http.Request){bearer(token), withQuery(HeaderFlowID, c.flow)}},
		{name: "the documented headers of an event post", mods: []func(*http.Request){bearer(token), flow,
			withHeader("x-api-key", testClientID), withHeader("x-gw-ims-org-id", testOrg), withHeader("x-sandbox-name", testSandbox)}},
		{name: "no Authorization", mods: []func(*http.Request){flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "token without Bearer", mods: []func(*http.Request){withHeader("Authorization", token), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "unknown token", mods: []func(*http.Request){bearer("emu.forged"), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "expired token", mods: []func(*http.Request){bearer(expired), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "token of another credential", mods: []func(*http.Request){bearer(other), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "HMAC instead of a token", mods: []func(*http.Request){withHeader(HeaderHMAC, SignHMAC(testSecret, event)), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "no flow ID", mods: []func(*http.Request){bearer(token)}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
		{name: "another flow's ID", mods: []func(*http.Request){bearer(token), withHeader(HeaderFlowID, newUUID())}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
		{name: "no flow ID and no token: authentication first", wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
	}
	runCollectCases(t, v, c.inlet, http.StatusOK, cases)

	// The token is checked against the connection's current clientId.
	base, _ := v.emu.Objects().Find(KindConnection, c.base)
	res := v.do(http.MethodPatch, fsPath("/connections/"+c.base),
		[]map[string]any{{"op": "replace", "path": "/auth/params", "value": map[string]any{"clientId": otherClientID, "clientSecret": otherSecret}}},
		withHeader("If-Match", base.ETag))
	mustStatus(t, "rotate the credential", res, http.StatusOK)
	runCollectCases(t, v, c.inlet, http.StatusOK, []collectCase{
		{name: "token of the new credential", mods: []func(*http.Request){bearer(other), flow}},
		{name: "token of the replaced credential", mods: []func(*http.Request){bearer(token), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
	})
}

func TestCollectionHMAC(t *testing.T) {
	v := newEnv(t, Options{ConnectionAuth: ConnectionAuthHMAC})
	c := v.createChain("hmac", ConnectionAuthHMAC)
	flow := withHeader(HeaderFlowID, c.flow)
	sig := SignHMAC(testHMACSecret, event)
	mac := func() []byte { b, _ := hex.DecodeString(sig); return b }()
	signed := func(s string) func(*http.Request) { return withHeader(HeaderHMAC, s) }

	cases := []collectCase{
		{name: "signature over the exact body", mods: []func(*http.Request){signed(sig), flow}},
		{name: "uppercase hex", mods: []func(*http.Request){signed(strings.ToUpper(sig)), flow}},
		{name: "flow ID as a query parameter", mods: []func(*http.Request){signed(sig), withQuery(HeaderFlowID, c.flow)}},
		{name: "no signature", mods: []func(*http.Request){flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "signed with another secret", mods: []func(*http.Request){signed(SignHMAC(strings.Repeat("x", 32), event)), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "body changed after signing", body: []byte(`{"eventName":"pointsIssued","customer":{"id":"c-1"},"points":11}`), mods: []func(*http.Request){signed(sig), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "body reformatted after signing", body: []byte(`{"eventName": "pointsIssued", "customer": {"id": "c-1"}, "points": 10}`), mods: []func(*http.Request){signed(sig), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "base64 encoding (not the emulator's)", mods: []func(*http.Request){signed(base64.StdEncoding.EncodeToString(mac)), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "bearer token instead", mods: []func(*http.Request){withHeader("Authorization", "Bearer "+v.token), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "no flow ID", mods: []func(*http.Request){signed(sig)}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
		{name: "another flow's ID", mods: []func(*http.Request){signed(sig), withHeader(HeaderFlowID, newUUID())}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
	}
	runCollectCases(t, v, c.inlet, http.StatusOK, cases)

	// Another flow's ID that does exist is refused too.
	c2 := v.createChain("hmac2", ConnectionAuthHMAC)
	runCollectCases(t, v, c.inlet, http.StatusOK, []collectCase{
		{name: "the ID of another existing flow", mods: []func(*http.Request){signed(sig), withHeader(HeaderFlowID, c2.flow)}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
	})
}

func TestCollectionBatch(t *testing.T) {
	v := newEnv(t, Options{ConnectionAuth: ConnectionAuthHMAC})
	c := v.createChain("batch", ConnectionAuthHMAC)
	path := CollectionPrefix + "/batch/" + strings.TrimPrefix(c.inlet, CollectionPrefix+"/")
	batch := []byte(`{"messages":[{"header":{"flowId":"f"},"body":{"a":1}},{"header":{"flowId":"f"},"body":{"a":2}}]}`)
	flow := withHeader(HeaderFlowID, c.flow)
	cases := []collectCase{
		{name: "signed batch", body: batch, mods: []func(*http.Request){withHeader(HeaderHMAC, SignHMAC(testHMACSecret, batch)), flow}},
		{name: "unsigned batch", body: batch, mods: []func(*http.Request){flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "batch signed over one message", body: batch, mods: []func(*http.Request){withHeader(HeaderHMAC, SignHMAC(testHMACSecret, event)), flow}, wantStatus: http.StatusUnauthorized, wantType: DCSAuthorizationProblem},
		{name: "batch without flow ID", body: batch, mods: []func(*http.Request){withHeader(HeaderHMAC, SignHMAC(testHMACSecret, batch))}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
		{name: "not a batch", body: event, mods: []func(*http.Request){withHeader(HeaderHMAC, SignHMAC(testHMACSecret, event)), flow}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
	}
	runCollectCases(t, v, path, http.StatusMultiStatus, cases)

	res := v.send(v.collectRequest(path, batch, withHeader(HeaderHMAC, SignHMAC(testHMACSecret, batch)), flow))
	mustStatus(t, "batch", res, http.StatusMultiStatus)
	m := res.json()
	if rs, _ := m["responses"].([]any); len(rs) != 2 || m["batchId"] == "" || m["inletId"] != strings.TrimPrefix(c.inlet, CollectionPrefix+"/") {
		t.Errorf("batch answer = %s", res.body)
	}
	if n := v.emu.Calls().OpStatus(OpCollectionBatch, http.StatusMultiStatus); n != 2 {
		t.Errorf("collection.batch 207 calls = %d, want 2", n)
	}
	res = v.send(v.collectRequest(CollectionPrefix+"/batch/"+newHexID(32), batch))
	mustStatus(t, "unknown inlet", res, http.StatusNotFound)
}

// Without authentication the inlet accepts posts as before; a flow ID, when
// given, must still name the inlet's flow.
func TestCollectionNone(t *testing.T) {
	for _, a := range []ConnectionAuth{ConnectionAuthNone, ConnectionAuthHMAC} {
		t.Run(string(a), func(t *testing.T) {
			v := newEnv(t, Options{ConnectionAuth: a})
			// A flow of the generic spec (empty authSpec in every variant).
			src := sourceConnectionBody("generic")
			src["connectionSpec"] = map[string]any{"id": GenericStreamingConnectionSpecID, "version": "1.0"}
			if a == ConnectionAuthNone {
				src = sourceConnectionBody("capillary")
			}
			srcID, _ := v.mustCreate(fsPath("/sourceConnections"), src)
			tgt, _ := v.mustCreate(fsPath("/targetConnections"), targetConnectionBody("t", testDataset))
			flowID, _ := v.mustCreate(fsPath("/flows"), flowBody("f", srcID, tgt, ""))
			res := v.do(http.MethodGet, fsPath("/flows/"+flowID), nil)
			inlet, _ := Object{Doc: res.items()[0]}.Field("options.inletUrl").(string)
			path := strings.TrimPrefix(inlet, v.url)
			// No mapping set: the messages must be XDM (ingestion_test.go).
			xdm := xdmMessage(testOrg, map[string]any{"loyalty": map[string]any{"points": 10.0}})
			runCollectCases(t, v, path, http.StatusOK, []collectCase{
				{name: "no headers", body: xdm},
				{name: "its flow ID", body: xdm, mods: []func(*http.Request){withHeader(HeaderFlowID, flowID)}},
				{name: "another flow's ID", body: xdm, mods: []func(*http.Request){withHeader(HeaderFlowID, newUUID())}, wantStatus: http.StatusBadRequest, wantType: DCSInletProblem},
				{name: "an invalid token is ignored", body: xdm, mods: []func(*http.Request){withHeader("Authorization", "Bearer nope")}},
				{name: "not JSON", body: []byte("{"), wantStatus: http.StatusBadRequest},
			})
		})
	}
}

func TestHMACSecretOverlap(t *testing.T) {
	newSecret := strings.Repeat("n", HMACSecretMinLength)
	cases := []struct {
		name      string
		overlap   time.Duration
		advance   time.Duration
		wantOld   int
		wantNewOK bool
	}{
		{name: "off by default", wantOld: http.StatusUnauthorized},
		{name: "within the window", overlap: time.Hour, advance: 59 * time.Minute, wantOld: http.StatusOK},
		{name: "after the window", overlap: time.Hour, advance: time.Hour, wantOld: http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			v := newEnv(t, Options{ConnectionAuth: ConnectionAuthHMAC, HMACSecretOverlap: tc.overlap, Clock: clock.Now})
			c := v.createChain("rot", ConnectionAuthHMAC)
			base, _ := v.emu.Objects().Find(KindConnection, c.base)
			res := v.do(http.MethodPatch, fsPath("/connections/"+c.base),
				[]map[string]any{{"op": "replace", "path": "/auth/params/sharedSecret", "value": newSecret}}, withHeader("If-Match", base.ETag))
			mustStatus(t, "rotate", res, http.StatusOK)
			clock.Advance(tc.advance)
			flow := withHeader(HeaderFlowID, c.flow)
			runCollectCases(t, v, c.inlet, http.StatusOK, []collectCase{
				{name: "new secret", mods: []func(*http.Request){withHeader(HeaderHMAC, SignHMAC(newSecret, event)), flow}},
				{name: "previous secret", mods: []func(*http.Request){withHeader(HeaderHMAC, SignHMAC(testHMACSecret, event)), flow}, wantStatus: tc.wantOld},
			})
		})
	}
}

// A base connection that vanished out of band leaves an authenticated inlet
// that accepts nothing.
func TestCollectionBaseVanished(t *testing.T) {
	v := newEnv(t, Options{ConnectionAuth: ConnectionAuthHMAC})
	c := v.createChain("gone", ConnectionAuthHMAC)
	v.emu.Vanish(KindConnection, c.base)
	res := v.send(v.collectRequest(c.inlet, event, withHeader(HeaderHMAC, SignHMAC(testHMACSecret, event)), withHeader(HeaderFlowID, c.flow)))
	mustStatus(t, "post after the base vanished", res, http.StatusUnauthorized)
}
