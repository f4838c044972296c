package emulatortest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/emulator"
)

func TestStart(t *testing.T) {
	emu, base := Start(t, emulator.Options{})
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {ClientID}, "client_secret": {ClientSecret}}
	res, err := http.Post(base+emulator.IMSTokenPath, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("token status = %d, want 200", res.StatusCode)
	}
	if got := emu.Calls().OpStatus(emulator.OpIMSToken, http.StatusOK); got != 1 {
		t.Errorf("token calls = %d, want 1", got)
	}
}
