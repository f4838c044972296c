package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testHMACSecret is exactly HMACSecretMinLength characters.
const testHMACSecret = "0123456789abcdef0123456789abcdef"

func baseConnectionBody(name, specName string, params map[string]any) map[string]any {
	return map[string]any{
		"name":           name,
		"description":    "Base connection to authenticate the Capillary source.",
		"connectionSpec": map[string]any{"id": CapillaryConnectionSpecID, "version": "1.0"},
		"auth":           map[string]any{"specName": specName, "params": params},
	}
}

// validBaseConnection returns a base connection body the variant accepts.
func validBaseConnection(name string, a ConnectionAuth) map[string]any {
	switch a {
	case ConnectionAuthOAuth2:
		return baseConnectionBody(name, OAuth2AuthSpecName, map[string]any{"clientId": testClientID, "clientSecret": testSecret})
	case ConnectionAuthHMAC:
		return baseConnectionBody(name, HMACAuthSpecName, map[string]any{"sharedSecret": testHMACSecret})
	}
	return nil
}

func sourceWithBase(name, baseID string) map[string]any {
	b := sourceConnectionBody(name)
	if baseID != "" {
		b["baseConnectionId"] = baseID
	}
	return b
}

// expectCreated checks a create answer: 201 when wantType is empty, else 400
// with that Flow Service error type.
func expectCreated(t *testing.T, what string, res response, wantType string) {
	t.Helper()
	if wantType == "" {
		mustStatus(t, what, res, http.StatusCreated)
		return
	}
	mustStatus(t, what, res, http.StatusBadRequest)
	if res.errorType() != wantType {
		t.Errorf("%s: type = %q, want %s; body %s", what, res.errorType(), wantType, res.body)
	}
}

func TestParseConnectionAuth(t *testing.T) {
	for in, want := range map[string]ConnectionAuth{"": ConnectionAuthNone, "none": ConnectionAuthNone, "OAuth2": ConnectionAuthOAuth2, " hmac ": ConnectionAuthHMAC} {
		if got, err := ParseConnectionAuth(in); err != nil || got != want {
			t.Errorf("ParseConnectionAuth(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseConnectionAuth("basic"); err == nil {
		t.Error("ParseConnectionAuth(basic) succeeded")
	}
	if _, err := New(Options{ConnectionAuth: "basic"}); err == nil {
		t.Error("New accepted an unknown ConnectionAuth")
	}
	if _, err := New(Options{HMACSecretOverlap: -1}); err == nil {
		t.Error("New accepted a negative HMACSecretOverlap")
	}
}

func TestConnectionSpecVariants(t *testing.T) {
	cases := []struct {
		auth         ConnectionAuth
		wantRequired bool
		wantName     string
		wantType     string
		wantRequire  []any
		wantSecrets  []string
	}{
		{auth: "", wantRequired: false},
		{auth: ConnectionAuthNone, wantRequired: false},
		{auth: ConnectionAuthOAuth2, wantRequired: true, wantName: OAuth2AuthSpecName, wantType: OAuth2AuthSpecType,
			wantRequire: []any{"clientId", "clientSecret"}, wantSecrets: []string{"clientSecret"}},
		{auth: ConnectionAuthHMAC, wantRequired: true, wantName: HMACAuthSpecName, wantType: HMACAuthSpecType,
			wantRequire: []any{"sharedSecret"}, wantSecrets: []string{"sharedSecret"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.auth), func(t *testing.T) {
			forEachValidation(t, func(t *testing.T, opts Options) {
				opts.ConnectionAuth = tc.auth
				v := newEnv(t, opts)
				res := v.do(http.MethodGet, fsPath("/connectionSpecs/"+CapillaryConnectionSpecID), nil)
				mustStatus(t, "GET connection spec", res, http.StatusOK)
				spec := Object{Doc: res.items()[0]}
				if got := spec.Field("sourceSpec.attributes.authRequired"); got != tc.wantRequired {
					t.Errorf("authRequired = %v, want %v", got, tc.wantRequired)
				}
				as, _ := spec.Field("authSpec").([]any)
				if tc.wantName == "" {
					if len(as) != 0 {
						t.Errorf("authSpec = %v, want []", as)
					}
				} else {
					if len(as) != 1 {
						t.Fatalf("authSpec has %d entries, want 1", len(as))
					}
					a := Object{Doc: as[0].(map[string]any)}
					if a.Name() != tc.wantName || a.Field("type") != tc.wantType {
						t.Errorf("authSpec name/type = %v/%v, want %s/%s", a.Name(), a.Field("type"), tc.wantName, tc.wantType)
					}
					if got := a.Field("spec.$schema"); got != "http://json-schema.org/draft-07/schema#" {
						t.Errorf("spec.$schema = %v", got)
					}
					if d := cmp.Diff(tc.wantRequire, a.Field("spec.required")); d != "" {
						t.Errorf("spec.required (-want +got):\n%s", d)
					}
					for _, p := range tc.wantSecrets {
						if got := a.Field("spec.properties." + p + ".format"); got != "password" {
							t.Errorf("%s format = %v, want password", p, got)
						}
					}
				}
				// Every variant keeps the spec in GenericStreamingAEP.
				res = v.do(http.MethodGet, fsPath("/flowSpecs?property="+url.QueryEscape("sourceConnectionSpecIds[]=="+CapillaryConnectionSpecID)), nil)
				mustStatus(t, "list flow specs", res, http.StatusOK)
				if items := res.items(); len(items) != 1 || items[0]["id"] != StreamingFlowSpecID {
					t.Errorf("flow specs listing the Capillary spec = %v", items)
				}
				want := tc.auth
				if want == "" {
					want = ConnectionAuthNone
				}
				if got := v.emu.ConnectionAuth(); got != want {
					t.Errorf("ConnectionAuth() = %q, want %q", got, want)
				}
			})
		})
	}
}

func TestBaseConnectionParams(t *testing.T) {
	long := strings.Repeat("k", HMACSecretMinLength)
	cases := []struct {
		name     string
		auth     ConnectionAuth
		body     map[string]any
		wantCode string // "" = created
	}{
		{"oauth2 credential", ConnectionAuthOAuth2, baseConnectionBody("b", OAuth2AuthSpecName, map[string]any{"clientId": "c", "clientSecret": "s"}), ""},
		{"oauth2 with a scope", ConnectionAuthOAuth2, baseConnectionBody("b", OAuth2AuthSpecName, map[string]any{"clientId": "c", "clientSecret": "s", "scope": "openid"}), ""},
		{"oauth2 without clientSecret", ConnectionAuthOAuth2, baseConnectionBody("b", OAuth2AuthSpecName, map[string]any{"clientId": "c"}), "FLOW-1100-400"},
		{"oauth2 with an empty clientId", ConnectionAuthOAuth2, baseConnectionBody("b", OAuth2AuthSpecName, map[string]any{"clientId": "", "clientSecret": "s"}), "FLOW-1100-400"},
		{"oauth2 with a param the spec lacks", ConnectionAuthOAuth2, baseConnectionBody("b", OAuth2AuthSpecName, map[string]any{"clientId": "c", "clientSecret": "s", "accessToken": "t"}), "FLOW-1100-400"},
		{"oauth2 with a numeric clientId", ConnectionAuthOAuth2, baseConnectionBody("b", OAuth2AuthSpecName, map[string]any{"clientId": 7, "clientSecret": "s"}), "FLOW-1100-400"},
		{"hmac secret of the minimum length", ConnectionAuthHMAC, baseConnectionBody("b", HMACAuthSpecName, map[string]any{"sharedSecret": long}), ""},
		{"hmac with the const fields", ConnectionAuthHMAC, baseConnectionBody("b", HMACAuthSpecName, map[string]any{"sharedSecret": long, "algorithm": "HmacSHA256", "signatureEncoding": "hex"}), ""},
		{"hmac secret too short", ConnectionAuthHMAC, baseConnectionBody("b", HMACAuthSpecName, map[string]any{"sharedSecret": long[1:]}), "FLOW-1100-400"},
		{"hmac with another encoding", ConnectionAuthHMAC, baseConnectionBody("b", HMACAuthSpecName, map[string]any{"sharedSecret": long, "signatureEncoding": "base64"}), "FLOW-1100-400"},
		{"hmac without params", ConnectionAuthHMAC, baseConnectionBody("b", HMACAuthSpecName, map[string]any{}), "FLOW-1100-400"},
		{"unknown specName", ConnectionAuthHMAC, baseConnectionBody("b", "OAuth generic-rest-connector", map[string]any{"sharedSecret": long}), "FLOW-1415-400"},
		{"the other variant's specName", ConnectionAuthHMAC, baseConnectionBody("b", OAuth2AuthSpecName, map[string]any{"clientId": "c", "clientSecret": "s"}), "FLOW-1415-400"},
		{"no authSpec in the none variant", ConnectionAuthNone, baseConnectionBody("b", HMACAuthSpecName, map[string]any{"sharedSecret": long}), "FLOW-1415-400"},
		{"unknown connection spec", ConnectionAuthHMAC, func() map[string]any {
			b := baseConnectionBody("b", HMACAuthSpecName, map[string]any{"sharedSecret": long})
			b["connectionSpec"] = map[string]any{"id": newUUID(), "version": "1.0"}
			return b
		}(), "FLOW-1413-400"},
		{"no name", ConnectionAuthHMAC, func() map[string]any {
			b := baseConnectionBody("b", HMACAuthSpecName, map[string]any{"sharedSecret": long})
			delete(b, "name")
			return b
		}(), "FLOW-1100-400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachValidation(t, func(t *testing.T, opts Options) {
				opts.ConnectionAuth = tc.auth
				v := newEnv(t, opts)
				res := v.do(http.MethodPost, fsPath("/connections"), tc.body)
				if tc.wantCode == "" {
					mustStatus(t, "POST connections", res, http.StatusCreated)
					if loc := res.header.Get("Location"); !strings.HasSuffix(loc, "/connections/"+res.json()["id"].(string)) {
						t.Errorf("Location = %q", loc)
					}
					return
				}
				mustStatus(t, "POST connections", res, http.StatusBadRequest)
				if res.errorType() != tc.wantCode {
					t.Errorf("type = %q, want %s; body %s", res.errorType(), tc.wantCode, res.body)
				}
				if strings.Contains(string(res.body), long) {
					t.Error("the error echoes the secret")
				}
				if n := len(v.emu.Objects().Connections); n != 0 {
					t.Errorf("refused base connection stored: %d", n)
				}
			})
		})
	}
}

func TestBaseConnectionLifecycle(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		opts.ConnectionAuth = ConnectionAuthHMAC
		v := newEnv(t, opts)
		id, etag := v.mustCreate(fsPath("/connections"), validBaseConnection("capillary-base", ConnectionAuthHMAC))
		if !quotedUUID.MatchString(etag) {
			t.Errorf("etag = %q", etag)
		}

		// GET: items[0], secrets masked on the wire, stored in clear.
		res := v.do(http.MethodGet, fsPath("/connections/"+id), nil)
		mustStatus(t, "GET connection", res, http.StatusOK)
		got := Object{Doc: res.items()[0]}
		if got.Name() != "capillary-base" || got.State() != "enabled" || got.Field("etag") != etag {
			t.Errorf("GET connection = %v", got.Doc)
		}
		if s := got.Field("auth.params.sharedSecret"); s != maskedSecret {
			t.Errorf("GET returned sharedSecret %v, want it masked", s)
		}
		if strings.Contains(string(res.body), testHMACSecret) {
			t.Error("GET leaks the secret")
		}
		if snap, _ := v.emu.Objects().Find(KindConnection, id); snap.Field("auth.params.sharedSecret") != maskedSecret {
			t.Error("the snapshot leaks the secret")
		}
		if p, ok := v.emu.ConnectionParams(id); !ok || p["sharedSecret"] != testHMACSecret {
			t.Errorf("ConnectionParams = %v, %v", p, ok)
		}

		// List and filter, with continuation like the other collections.
		id2, _ := v.mustCreate(fsPath("/connections"), validBaseConnection("other-base", ConnectionAuthHMAC))
		res = v.do(http.MethodGet, fsPath("/connections?property="+url.QueryEscape("name==capillary-base")), nil)
		mustStatus(t, "filter connections", res, http.StatusOK)
		if items := res.items(); len(items) != 1 || items[0]["id"] != id {
			t.Errorf("filter by name = %v", items)
		}
		res = v.do(http.MethodGet, fsPath("/connections?limit=1"), nil)
		mustStatus(t, "list page 1", res, http.StatusOK)
		next, _ := Object{Doc: res.json()}.Field("_links.next.href").(string)
		if len(res.items()) != 1 || next == "" {
			t.Fatalf("page 1 = %s", res.body)
		}
		u, _ := url.Parse(next)
		res = v.do(http.MethodGet, fsPath("/connections?limit=1&continuationToken="+url.QueryEscape(u.Query().Get("continuationToken"))), nil)
		mustStatus(t, "list page 2", res, http.StatusOK)
		if items := res.items(); len(items) != 1 || items[0]["id"] != id2 {
			t.Errorf("page 2 = %v", items)
		}

		// PATCH: If-Match required, stale etag 412, params re-validated,
		// the etag changes on every change.
		rotate := []map[string]any{{"op": "replace", "path": "/auth/params/sharedSecret", "value": strings.Repeat("n", HMACSecretMinLength)}}
		patchCases := []struct {
			name     string
			ifMatch  string
			ops      any
			wantCode int
			wantType string
		}{
			{"no If-Match", "", rotate, http.StatusBadRequest, "FLOW-1403-400"},
			{"stale etag", `"` + newUUID() + `"`, rotate, http.StatusPreconditionFailed, "FLOW-1404-412"},
			{"secret too short", etag, []map[string]any{{"op": "replace", "path": "/auth/params/sharedSecret", "value": "short"}}, http.StatusBadRequest, "FLOW-1100-400"},
			{"unknown specName", etag, []map[string]any{{"op": "replace", "path": "/auth/specName", "value": "Basic Authentication"}}, http.StatusBadRequest, "FLOW-1415-400"},
			{"connection spec", etag, []map[string]any{{"op": "replace", "path": "/connectionSpec/id", "value": GenericStreamingConnectionSpecID}}, http.StatusBadRequest, "FLOW-1414-400"},
			{"rotate the secret", etag, rotate, http.StatusOK, ""},
		}
		for _, pc := range patchCases {
			res := v.do(http.MethodPatch, fsPath("/connections/"+id), pc.ops, withHeader("If-Match", pc.ifMatch))
			mustStatus(t, "PATCH "+pc.name, res, pc.wantCode)
			if pc.wantType != "" && res.errorType() != pc.wantType {
				t.Errorf("PATCH %s: type = %q, want %s", pc.name, res.errorType(), pc.wantType)
			}
			if pc.wantCode == http.StatusOK {
				newETag, _ := res.json()["etag"].(string)
				if newETag == etag || !quotedUUID.MatchString(newETag) {
					t.Errorf("etag after PATCH = %q (before %q)", newETag, etag)
				}
				etag = newETag
			}
		}
		if p, _ := v.emu.ConnectionParams(id); p["sharedSecret"] != strings.Repeat("n", HMACSecretMinLength) {
			t.Error("the rotated secret was not stored")
		}

		// DELETE: refused while a source connection references it.
		src, _ := v.mustCreate(fsPath("/sourceConnections"), sourceWithBase("s", id))
		res = v.do(http.MethodDelete, fsPath("/connections/"+id), nil)
		mustStatus(t, "DELETE base in use", res, http.StatusBadRequest)
		if res.errorType() != "FLOW-1418-400" {
			t.Errorf("type = %q, want FLOW-1418-400", res.errorType())
		}
		mustStatus(t, "DELETE source", v.do(http.MethodDelete, fsPath("/sourceConnections/"+src), nil), http.StatusNoContent)
		mustStatus(t, "DELETE base", v.do(http.MethodDelete, fsPath("/connections/"+id), nil), http.StatusNoContent)
		res = v.do(http.MethodGet, fsPath("/connections/"+id), nil)
		mustStatus(t, "GET deleted base", res, http.StatusNotFound)
		if res.errorType() != "FLOW-1439-404" {
			t.Errorf("type = %q, want FLOW-1439-404", res.errorType())
		}
		mustStatus(t, "DELETE deleted base", v.do(http.MethodDelete, fsPath("/connections/"+id), nil), http.StatusNotFound)
	})
}

func TestSourceConnectionNeedsBase(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		opts.ConnectionAuth = ConnectionAuthOAuth2
		v := newEnv(t, opts)
		base, _ := v.mustCreate(fsPath("/connections"), validBaseConnection("b", ConnectionAuthOAuth2))
		otherPartition, _ := v.in(testOrg, "dev").mustCreate(fsPath("/connections"), validBaseConnection("b", ConnectionAuthOAuth2))
		generic := sourceConnectionBody("generic")
		generic["connectionSpec"] = map[string]any{"id": GenericStreamingConnectionSpecID, "version": "1.0"}
		genericWithBase := sourceWithBase("generic", base)
		genericWithBase["connectionSpec"] = generic["connectionSpec"]

		cases := []struct {
			name     string
			body     map[string]any
			wantType string // "" = created
		}{
			{"with its base connection", sourceWithBase("s", base), ""},
			{"without baseConnectionId", sourceWithBase("s", ""), "FLOW-1100-400"},
			{"with a base connection that does not exist", sourceWithBase("s", newUUID()), "FLOW-1100-400"},
			{"with a base connection of another sandbox", sourceWithBase("s", otherPartition), "FLOW-1100-400"},
			// The generic streaming spec has an empty authSpec in every variant.
			{"generic spec with a base connection", genericWithBase, "FLOW-1332-400"},
			{"generic spec without one", generic, ""},
		}
		for _, tc := range cases {
			expectCreated(t, tc.name, v.do(http.MethodPost, fsPath("/sourceConnections"), tc.body), tc.wantType)
		}

		// A base connection of another connection spec: the emulator's only
		// other spec with an authSpec is none, so plant one out of band.
		foreign, _ := v.mustCreate(fsPath("/connections"), validBaseConnection("foreign", ConnectionAuthOAuth2))
		v.emu.Modify(KindConnection, foreign, func(doc map[string]any) {
			doc["connectionSpec"] = map[string]any{"id": GenericStreamingConnectionSpecID, "version": "1.0"}
		})
		res := v.do(http.MethodPost, fsPath("/sourceConnections"), sourceWithBase("s", foreign))
		mustStatus(t, "base of another spec", res, http.StatusBadRequest)
		if res.errorType() != "FLOW-1100-400" {
			t.Errorf("base of another spec: type = %q", res.errorType())
		}

		// PATCH cannot drop the base connection either.
		src, etag := v.mustCreate(fsPath("/sourceConnections"), sourceWithBase("p", base))
		res = v.do(http.MethodPatch, fsPath("/sourceConnections/"+src), []map[string]any{{"op": "replace", "path": "/baseConnectionId", "value": ""}}, withHeader("If-Match", etag))
		mustStatus(t, "PATCH empty baseConnectionId", res, http.StatusBadRequest)
		if res.errorType() != "FLOW-1100-400" {
			t.Errorf("PATCH empty baseConnectionId: type = %q", res.errorType())
		}
	})
}

// The none variant keeps refusing a base connection on the Capillary spec.
func TestSourceConnectionNoneVariant(t *testing.T) {
	v := newEnv(t, Options{ConnectionAuth: ConnectionAuthNone})
	res := v.do(http.MethodPost, fsPath("/sourceConnections"), sourceWithBase("s", newUUID()))
	mustStatus(t, "base on the none variant", res, http.StatusBadRequest)
	if res.errorType() != "FLOW-1332-400" {
		t.Errorf("type = %q, want FLOW-1332-400", res.errorType())
	}
	mustStatus(t, "no base", v.do(http.MethodPost, fsPath("/sourceConnections"), sourceConnectionBody("s")), http.StatusCreated)
}
