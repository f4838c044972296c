package emulator

import (
	"crypto/subtle"
	"mime"
	"net/http"
)

// maxTokens bounds the token table; expired tokens are pruned beyond it.
const maxTokens = 1024

// handleToken serves POST /ims/token/v3 (OAuth server-to-server, client
// credentials grant).
func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	w.Header().Set("X-Debug-Id", rc.requestID)
	// Adobe accepts credentials in the query too, but they then end up in
	// access logs; the operator must never do that, so the emulator refuses.
	q := r.URL.Query()
	for _, k := range []string{"client_id", "client_secret"} {
		if q.Has(k) {
			imsError(w, http.StatusBadRequest, "invalid_request", "client credentials must be sent in the form body, not the URL query")
			return
		}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		imsError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		imsError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	form := r.PostForm
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	rc.clientID = clientID
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		imsError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	if clientID == "" {
		imsError(w, http.StatusBadRequest, "invalid_request", "missing client_id parameter")
		return
	}
	if secret == "" {
		imsError(w, http.StatusBadRequest, "invalid_request", "missing client_secret parameter")
		return
	}

	e.mu.Lock()
	want, known := e.creds[clientID]
	if !known || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		e.mu.Unlock()
		imsError(w, http.StatusUnauthorized, "invalid_client", "invalid client_id or client_secret parameter")
		return
	}
	now := e.clock()
	if len(e.tokens) >= maxTokens {
		for tok, info := range e.tokens {
			if !now.Before(info.expires) {
				delete(e.tokens, tok)
			}
		}
	}
	token := newToken()
	e.tokens[token] = tokenInfo{clientID: clientID, expires: now.Add(e.lifetime)}
	e.mu.Unlock()

	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "bearer",
		"expires_in":   int64(e.lifetime.Seconds()),
	})
}

// lookupToken returns the token's owner if it is known and unexpired.
func (e *Emulator) lookupToken(token string) (tokenInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	info, ok := e.tokens[token]
	if !ok || !e.clock().Before(info.expires) || e.refused[info.clientID] {
		return tokenInfo{}, false
	}
	return info, true
}

// expireToken makes one token expired, if it is known.
func (e *Emulator) expireToken(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if info, ok := e.tokens[token]; ok {
		info.expires = e.clock()
		e.tokens[token] = info
	}
}
