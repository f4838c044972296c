package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// ConnectionAuth selects how the Capillary connection spec
// (CapillaryConnectionSpecID) authenticates its inlet, i.e. which authSpec
// the emulator serves for it. Adobe's Streaming SDK page on authentication
// (help/sources/sources-sdk/streaming/authentication.md in
// AdobeDocs/experience-platform.en) allows OAuth 2.0 or HMAC; the Streaming
// SDK creation page (help/sources/sources-sdk/streaming/create.md) still
// prints `"authSpec": []`. Which one Capillary's real spec carries is
// published nowhere, hence a per-run choice. See docs/emulator.md.
type ConnectionAuth string

// The connection-spec variants.
const (
	// ConnectionAuthNone serves `"authSpec": []` and authRequired false: no
	// base connection, an inlet anyone holding the URL may post to.
	ConnectionAuthNone ConnectionAuth = "none"
	// ConnectionAuthOAuth2 serves an OAuth 2.0 client-credentials authSpec:
	// the base connection carries the Adobe credential the partner uses to
	// get an IMS token, and the inlet wants `Authorization: Bearer`.
	ConnectionAuthOAuth2 ConnectionAuth = "oauth2"
	// ConnectionAuthHMAC serves an HMAC authSpec: the base connection
	// carries a shared secret, and the inlet wants each body signed with it
	// in the x-hmac-sha256 header.
	ConnectionAuthHMAC ConnectionAuth = "hmac"
)

// ConnectionAuthModes lists the variants, for flags and help texts.
func ConnectionAuthModes() []ConnectionAuth {
	return []ConnectionAuth{ConnectionAuthNone, ConnectionAuthOAuth2, ConnectionAuthHMAC}
}

// ParseConnectionAuth accepts "none", "oauth2" or "hmac"; empty means none.
func ParseConnectionAuth(s string) (ConnectionAuth, error) {
	a := ConnectionAuth(strings.ToLower(strings.TrimSpace(s)))
	if a == "" {
		return ConnectionAuthNone, nil
	}
	for _, m := range ConnectionAuthModes() {
		if a == m {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown connection auth %q (want none, oauth2 or hmac)", s)
}

// Names of the authSpecs the emulator serves and of the params the inlet
// checks read. The shape (name, type, spec = draft-07 JSON schema of params)
// is Adobe's (flow-service.yaml AuthenticationSpecDTO; examples in
// help/sources/sources-sdk/config/authspec.md); the names and types below
// are the emulator's assumption, since Adobe has not published the Streaming
// SDK's field names ("Use the field names defined by the current SDK schema",
// with the table left blank, in authentication.md).
const (
	OAuth2AuthSpecName = "OAuth2 Client Credential"
	OAuth2AuthSpecType = "OAuth2ClientCredential"
	HMACAuthSpecName   = "HMAC Shared Secret"
	HMACAuthSpecType   = "HMAC"

	// OAuth2ClientIDParam is the param whose client ID a bearer token
	// posted to the inlet must have been issued to.
	OAuth2ClientIDParam = "clientId"
	// HMACSecretParam is the param holding the shared secret the inlet
	// checks signatures with.
	HMACSecretParam = "sharedSecret"
	// HMACSecretMinLength is the schema's minLength for the shared secret:
	// RFC 2104 advises keys no shorter than the hash output, 32 bytes for
	// SHA-256. Adobe publishes no minimum; this is the emulator's assumption.
	HMACSecretMinLength = 32
)

// Headers of an event post to a streaming inlet.
const (
	// HeaderFlowID names the dataflow an inlet post is for; it may also be
	// sent as the query parameter of the same name (HTTP API tutorial,
	// help/sources/tutorials/api/create/streaming/http.md; the Pendo and
	// Customer.io pages build "{STREAMING_ENDPOINT}?x-adobe-flow-id={DATAFLOW_ID}").
	HeaderFlowID = "x-adobe-flow-id"
	// HeaderHMAC carries the HMAC-SHA256 signature of the exact body
	// (authentication.md, "Add the HMAC header").
	HeaderHMAC = "x-hmac-sha256"
)

// SignHMAC returns the x-hmac-sha256 value for body: HMAC-SHA256 keyed by
// secret over the exact bytes sent, as lowercase hexadecimal. The encoding
// is the emulator's assumption: Adobe's page leaves it unconfirmed ("lowercase
// hexadecimal, uppercase hexadecimal, or Base64") and its example value looks
// hexadecimal. The emulator compares hex case-insensitively.
func SignHMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// authSpecJSON returns the authSpec array the Capillary connection spec
// carries in a variant, as JSON.
func authSpecJSON(a ConnectionAuth) string {
	switch a {
	case ConnectionAuthOAuth2:
		return `[{
  "name": "` + OAuth2AuthSpecName + `",
  "type": "` + OAuth2AuthSpecType + `",
  "spec": {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "description": "Adobe OAuth server-to-server credential the partner exchanges at IMS for the access token it sends to the streaming endpoint as Authorization: Bearer.",
    "properties": {
      "clientId": {"description": "Client ID of the Adobe Developer Console credential.", "type": "string", "minLength": 1},
      "clientSecret": {"description": "Client secret of the credential.", "type": "string", "format": "password", "minLength": 1},
      "scope": {"description": "Scopes requested with the token.", "type": "string", "default": "openid,AdobeID,read_organizations"}
    },
    "required": ["clientId", "clientSecret"],
    "additionalProperties": false
  }
}]`
	case ConnectionAuthHMAC:
		return `[{
  "name": "` + HMACAuthSpecName + `",
  "type": "` + HMACAuthSpecType + `",
  "spec": {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "description": "Shared secret the partner signs each serialized event with (HMAC-SHA256 of the exact body, sent in the x-hmac-sha256 header).",
    "properties": {
      "sharedSecret": {"description": "Shared secret used as the HMAC key.", "type": "string", "format": "password", "minLength": ` + fmt.Sprint(HMACSecretMinLength) + `},
      "algorithm": {"description": "Signature algorithm.", "type": "string", "const": "HmacSHA256", "default": "HmacSHA256"},
      "signatureEncoding": {"description": "Encoding of the x-hmac-sha256 value.", "type": "string", "const": "hex", "default": "hex"}
    },
    "required": ["sharedSecret"],
    "additionalProperties": false
  }
}]`
	}
	return `[]`
}

// authSpecByName returns the authSpec of a connection spec with that name.
func authSpecByName(connSpec map[string]any, name string) map[string]any {
	arr, _ := connSpec["authSpec"].([]any)
	for _, a := range arr {
		if m, ok := a.(map[string]any); ok && str(m, "name") == name {
			return m
		}
	}
	return nil
}

// needsBaseConnection reports whether a connection spec has an authSpec, and
// so a source connection of it needs a base connection (aep-api.md §3.3).
func needsBaseConnection(connSpec map[string]any) bool {
	arr, _ := connSpec["authSpec"].([]any)
	return len(arr) > 0
}

// maskSecrets returns doc with every auth param whose schema says
// `"format": "password"` replaced by maskedSecret. Adobe does not document
// what a GET returns for secret params; returning them in clear would be the
// leak no real service commits, so the emulator masks them (its assumption).
func maskSecrets(doc map[string]any, connSpec map[string]any) map[string]any {
	as := authSpecByName(connSpec, str(doc, "auth", "specName"))
	params, _ := mapAt(doc, "auth", "params")
	props, _ := mapAt(as, "spec", "properties")
	if params == nil || props == nil {
		return doc
	}
	for k := range params {
		if p, _ := props[k].(map[string]any); p != nil && str(p, "format") == "password" {
			params[k] = maskedSecret
		}
	}
	return doc
}

// maskedSecret replaces secret param values in responses and snapshots.
const maskedSecret = "********"

func mapAt(m map[string]any, path ...string) (map[string]any, bool) {
	cur := m
	for _, p := range path {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, cur != nil
}
