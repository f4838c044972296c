package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testClientID = "client-a"
	testSecret   = "secret-a"
	testOrg      = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
	testSandbox  = "prod"
	testSchema   = "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168"
	testDataset  = "6889f4f89b982b2b90bc1207"
)

// fakeClock is a settable clock for token expiry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is an emulator served on loopback plus a caller with a valid token.
type env struct {
	t        *testing.T
	emu      *Emulator
	url      string
	token    string
	clientID string
	org      string
	sandbox  string
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.Credentials == nil {
		opts.Credentials = map[string]string{testClientID: testSecret}
	}
	emu, err := New(opts)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	base, err := emu.Start("")
	if err != nil {
		t.Fatalf("Start() error = %v", err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	v := &env{t: t, emu: emu, url: base, clientID: testClientID, org: testOrg, sandbox: testSandbox}
	v.token = v.fetchToken(testClientID, testSecret)
	return v
}

// in returns a copy of the caller working in another org and sandbox.
func (v *env) in(org, sandbox string) *env {
	c := *v
	c.org, c.sandbox = org, sandbox
	return &c
}

func (v *env) fetchToken(id, secret string) string {
	v.t.Helper()
	res := v.postForm(IMSTokenPath, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {"openid,AdobeID"}})
	if res.status != http.StatusOK {
		v.t.Fatalf("token: status %d, body %s", res.status, res.body)
	}
	tok, _ := res.json()["access_token"].(string)
	if tok == "" {
		v.t.Fatalf("token: no access_token in %s", res.body)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.body, &m)
	return m
}

// errorType returns the FLOW-... type of a Flow Service error body.
func (r response) errorType() string {
	t, _ := r.json()["type"].(string)
	return strings.TrimPrefix(t, "https://ns.adobe.com/aep/errors/")
}

// gatewayCode returns error_code of a gateway error body.
func (r response) gatewayCode() string {
	c, _ := r.json()["error_code"].(string)
	return c
}

func (r response) items() []map[string]any {
	raw, _ := r.json()["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

func (v *env) postForm(path string, form url.Values) response {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return v.send(req)
}

func (v *env) send(req *http.Request) response {
	v.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		v.t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

// newRequest builds a Platform request with every header Adobe requires;
// mods adjust it afterwards.
func (v *env) newRequest(method, path string, body any, mods ...func(*http.Request)) *http.Request {
	v.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			data, err := json.Marshal(body)
			if err != nil {
				v.t.Fatal(err)
			}
			b = string(data)
		}
		rd = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, v.url+path, rd)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("x-api-key", v.clientID)
	req.Header.Set("x-gw-ims-org-id", v.org)
	req.Header.Set("x-sandbox-name", v.sandbox)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, m := range mods {
		m(req)
	}
	return req
}

func (v *env) do(method, path string, body any, mods ...func(*http.Request)) response {
	v.t.Helper()
	return v.send(v.newRequest(method, path, body, mods...))
}

func withHeader(k, val string) func(*http.Request) {
	return func(r *http.Request) {
		if val == "" {
			r.Header.Del(k)
			return
		}
		r.Header.Set(k, val)
	}
}

func fsPath(path string) string { return FlowServicePrefix + path }
func dpPath(path string) string { return DataPrepPrefix + path }

func mustStatus(t *testing.T, what string, res response, want int) {
	t.Helper()
	if res.status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, res.status, want, bytes.TrimSpace(res.body))
	}
}

// Bodies as the operator sends them (Adobe's Streaming-SDK examples).

func sourceConnectionBody(name string) map[string]any {
	return map[string]any{
		"name":        name,
		"providerId":  StreamingProviderID,
		"description": "Capillary Streaming Source Connection",
		"connectionSpec": map[string]any{
			"id": CapillaryConnectionSpecID, "version": "1.0",
		},
		"data": map[string]any{"format": "json"},
	}
}

func targetConnectionBody(name, dataset string) map[string]any {
	return map[string]any{
		"name":           name,
		"connectionSpec": map[string]any{"id": DataLakeConnectionSpecID, "version": "1.0"},
		"data": map[string]any{
			"format": "json",
			"schema": map[string]any{"id": testSchema, "version": "application/vnd.adobe.xed-full+json;version=1"},
		},
		"params": map[string]any{"dataSetId": dataset},
	}
}

func mappingSetBody(dest ...string) map[string]any {
	var ms []any
	for _, d := range dest {
		ms = append(ms, map[string]any{"sourceAttribute": d, "destinationXdmPath": d, "identity": false, "version": 0})
	}
	return map[string]any{"version": 0, "xdmSchema": testSchema, "xdmVersion": "1.0", "mappings": ms}
}

func flowBody(name, src, tgt, mappingID string) map[string]any {
	b := map[string]any{
		"name":                name,
		"description":         "Capillary to Experience Platform",
		"flowSpec":            map[string]any{"id": StreamingFlowSpecID, "version": "1.0"},
		"sourceConnectionIds": []string{src},
		"targetConnectionIds": []string{tgt},
	}
	if mappingID != "" {
		b["transformations"] = []any{map[string]any{"name": "Mapping", "params": map[string]any{"mappingId": mappingID, "mappingVersion": 0}}}
	}
	return b
}

// created holds the IDs and etags of one full set of objects.
type created struct {
	source, target, mapping, flow string
	flowETag                      string
}

func (v *env) mustCreate(path string, body any) (id, etag string) {
	v.t.Helper()
	res := v.do(http.MethodPost, path, body)
	mustStatus(v.t, "POST "+path, res, http.StatusCreated)
	m := res.json()
	id, _ = m["id"].(string)
	etag, _ = m["etag"].(string)
	return id, etag
}

// createAll creates the objects of one CapillarySource in the caller's
// partition, in the operator's order.
func (v *env) createAll(name string) created {
	v.t.Helper()
	var c created
	c.source, _ = v.mustCreate(fsPath("/sourceConnections"), sourceConnectionBody(name+" source"))
	c.target, _ = v.mustCreate(fsPath("/targetConnections"), targetConnectionBody(name+" target", testDataset))
	res := v.do(http.MethodPost, dpPath("/mappingSets"), mappingSetBody("loyalty.points", "loyalty.tier"))
	mustStatus(v.t, "POST mappingSets", res, http.StatusOK)
	c.mapping, _ = res.json()["id"].(string)
	c.flow, c.flowETag = v.mustCreate(fsPath("/flows"), flowBody(name, c.source, c.target, c.mapping))
	return c
}

func newHTTPTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
