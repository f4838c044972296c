package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestIMSToken(t *testing.T) {
	v := newEnv(t, Options{TokenLifetime: 90 * time.Second})
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret}, "scope": {"openid"}}
	with := func(k, val string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		if val == "" {
			f.Del(k)
		} else {
			f.Set(k, val)
		}
		return f
	}
	cases := []struct {
		name       string
		req        func() *http.Request
		wantStatus int
		wantError  string
	}{
		{
			name: "valid credentials",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, v.url+IMSTokenPath, strings.NewReader(good.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			},
			wantStatus: http.StatusOK,
		},
		{
			name: "wrong secret",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, v.url+IMSTokenPath, strings.NewReader(with("client_secret", "nope").Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			},
			wantStatus: http.StatusUnauthorized, wantError: "invalid_client",
		},
		{
			name: "unknown client",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, v.url+IMSTokenPath, strings.NewReader(with("client_id", "someone").Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			},
			wantStatus: http.StatusUnauthorized, wantError: "invalid_client",
		},
		{
			name: "credentials in the URL query",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, v.url+IMSTokenPath+"?"+good.Encode(), strings.NewReader(good.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			},
			wantStatus: http.StatusBadRequest, wantError: "invalid_request",
		},
		{
			name: "wrong grant type",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, v.url+IMSTokenPath, strings.NewReader(with("grant_type", "password").Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			},
			wantStatus: http.StatusBadRequest, wantError: "unsupported_grant_type",
		},
		{
			name: "JSON body",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, v.url+IMSTokenPath, strings.NewReader(`{"client_id":"client-a"}`))
				r.Header.Set("Content-Type", "application/json")
				return r
			},
			wantStatus: http.StatusBadRequest, wantError: "invalid_request",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := v.send(tc.req())
			mustStatus(t, "token", res, tc.wantStatus)
			body := res.json()
			if tc.wantError != "" {
				if got := body["error"]; got != tc.wantError {
					t.Errorf("error = %v, want %q", got, tc.wantError)
				}
				if _, ok := body["access_token"]; ok {
					t.Errorf("error response carries an access_token")
				}
				return
			}
			if body["token_type"] != "bearer" {
				t.Errorf("token_type = %v, want bearer", body["token_type"])
			}
			if body["expires_in"] != float64(90) {
				t.Errorf("expires_in = %v, want 90 (seconds)", body["expires_in"])
			}
			if tok, _ := body["access_token"].(string); tok == "" {
				t.Errorf("no access_token")
			}
		})
	}
}

func TestGatewayChecks(t *testing.T) {
	v := newEnv(t, Options{
		Credentials:    map[string]string{testClientID: testSecret, "client-b": "secret-b"},
		Sandboxes:      []string{"prod", "dev"},
		UnentitledOrgs: []string{"NOPE@AdobeOrg"},
	})
	otherToken := v.fetchToken("client-b", "secret-b")
	path := fsPath("/connectionSpecs/" + CapillaryConnectionSpecID)
	cases := []struct {
		name       string
		method     string
		body       any
		mods       []func(*http.Request)
		wantStatus int
		// exactly one of these describes the error body
		wantGateway string
		wantFlow    string
	}{
		{name: "all headers", mods: nil, wantStatus: http.StatusOK},
		{name: "no Authorization", mods: []func(*http.Request){withHeader("Authorization", "")}, wantStatus: http.StatusForbidden, wantGateway: "403010"},
		{name: "not a bearer token", mods: []func(*http.Request){withHeader("Authorization", "Basic abc")}, wantStatus: http.StatusForbidden, wantGateway: "403010"},
		{name: "no x-api-key", mods: []func(*http.Request){withHeader("x-api-key", "")}, wantStatus: http.StatusForbidden, wantGateway: "403000"},
		{name: "unknown token", mods: []func(*http.Request){withHeader("Authorization", "Bearer forged")}, wantStatus: http.StatusUnauthorized, wantGateway: "401013"},
		{name: "x-api-key of another client", mods: []func(*http.Request){withHeader("x-api-key", "client-b")}, wantStatus: http.StatusForbidden, wantGateway: "403003"},
		{name: "token of another client", mods: []func(*http.Request){withHeader("Authorization", "Bearer "+otherToken)}, wantStatus: http.StatusForbidden, wantGateway: "403003"},
		{name: "no org header", mods: []func(*http.Request){withHeader("x-gw-ims-org-id", "")}, wantStatus: http.StatusBadRequest, wantGateway: "400003"},
		{name: "no sandbox header", mods: []func(*http.Request){withHeader("x-sandbox-name", "")}, wantStatus: http.StatusBadRequest, wantFlow: "FLOW-2105-400"},
		{name: "unknown sandbox", mods: []func(*http.Request){withHeader("x-sandbox-name", "qa")}, wantStatus: http.StatusNotFound, wantFlow: "FLOW-2100-404"},
		{name: "org without entitlement", mods: []func(*http.Request){withHeader("x-gw-ims-org-id", "NOPE@AdobeOrg")}, wantStatus: http.StatusForbidden, wantFlow: "FLOW-2118-403"},
		{
			name: "body without JSON content type", method: http.MethodPost, body: sourceConnectionBody("s"),
			mods:       []func(*http.Request){withHeader("Content-Type", "text/plain")},
			wantStatus: http.StatusBadRequest,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method, p := http.MethodGet, path
			if tc.method != "" {
				method, p = tc.method, fsPath("/sourceConnections")
			}
			res := v.do(method, p, tc.body, tc.mods...)
			mustStatus(t, tc.name, res, tc.wantStatus)
			if tc.wantGateway != "" {
				if got := res.gatewayCode(); got != tc.wantGateway {
					t.Errorf("error_code = %q, want %q (body %s)", got, tc.wantGateway, res.body)
				}
			}
			if tc.wantFlow != "" {
				if got := res.errorType(); got != tc.wantFlow {
					t.Errorf("type = %q, want %q (body %s)", got, tc.wantFlow, res.body)
				}
			}
		})
	}
	if n := len(v.emu.Objects().SourceConnections); n != 0 {
		t.Errorf("a refused create stored %d source connections", n)
	}
}

func TestTokenExpiry(t *testing.T) {
	clock := newFakeClock()
	v := newEnv(t, Options{Clock: clock.Now, TokenLifetime: time.Hour})
	path := fsPath("/flowSpecs/" + StreamingFlowSpecID)

	mustStatus(t, "fresh token", v.do(http.MethodGet, path, nil), http.StatusOK)
	clock.Advance(time.Hour)
	res := v.do(http.MethodGet, path, nil)
	mustStatus(t, "after lifetime", res, http.StatusUnauthorized)
	if res.gatewayCode() != "401013" {
		t.Errorf("error_code = %q, want 401013", res.gatewayCode())
	}

	v.token = v.fetchToken(testClientID, testSecret)
	mustStatus(t, "new token", v.do(http.MethodGet, path, nil), http.StatusOK)
	v.emu.ExpireTokens()
	mustStatus(t, "after ExpireTokens", v.do(http.MethodGet, path, nil), http.StatusUnauthorized)

	v.token = v.fetchToken(testClientID, testSecret)
	v.emu.RemoveCredential(testClientID)
	mustStatus(t, "after RemoveCredential", v.do(http.MethodGet, path, nil), http.StatusUnauthorized)
	res = v.postForm(IMSTokenPath, url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret}})
	mustStatus(t, "token for a removed credential", res, http.StatusUnauthorized)

	v.emu.AddCredential(testClientID, "rotated")
	v.token = v.fetchToken(testClientID, "rotated")
	mustStatus(t, "after AddCredential", v.do(http.MethodGet, path, nil), http.StatusOK)
}
