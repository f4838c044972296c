package localenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// IMSToken gets an access token as Capillary does before posting to an
// OAuth2 inlet: client credentials at {imsURL}/ims/token/v3.
func IMSToken(ctx context.Context, imsURL, clientID, clientSecret string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret},
		"scope": {"openid,AdobeID,read_organizations"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, imsURL+"/ims/token/v3", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("IMS token: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("IMS token: HTTP %d", resp.StatusCode)
	}
	return tok.AccessToken, nil
}
