package release_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	// As in main.go: the roots the manager has when the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// noSystemRoots is the environment of a process that has no system roots
// at all, as in the empty image: both variables Go reads point at nothing.
func noSystemRoots(t *testing.T) []string {
	dir := t.TempDir()
	return []string{
		"SSL_CERT_FILE=" + filepath.Join(dir, "no-such-file.pem"),
		"SSL_CERT_DIR=" + filepath.Join(dir, "no-such-dir"),
	}
}

// TestVerifyWithoutSystemRoots re-runs this test binary (which imports the
// fallback roots, as main.go does) with no system roots, and verifies a real
// certificate chain, www.google.com's of 2023 up to GTS Root R1, at a time it
// was valid, with the default roots: only the embedded bundle can vouch for
// it. No network is needed.
func TestVerifyWithoutSystemRoots(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestVerifyHelper$", "-test.v")
	cmd.Env = append(os.Environ(), append(noSystemRoots(t), "RELEASE_TEST_VERIFY=1")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("verification without system roots: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestVerifyHelper(t *testing.T) {
	if os.Getenv("RELEASE_TEST_VERIFY") != "1" {
		t.Skip("run by TestVerifyWithoutSystemRoots")
	}
	data, err := os.ReadFile(filepath.Join("testdata", "google-2023-chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 3 {
		t.Fatalf("%d certificates in the chain file, want leaf, intermediate, root", len(certs))
	}
	leaf, intermediate := certs[0], certs[1]
	at := time.Unix(1677615892, 0) // 2023-02-28, within the leaf's validity
	inter := x509.NewCertPool()
	inter.AddCert(intermediate)

	// With an empty pool of our own nothing verifies: the roots below come
	// from somewhere, and the system has none.
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "www.google.com", Intermediates: inter, CurrentTime: at, Roots: x509.NewCertPool()}); err == nil {
		t.Fatal("verified against an empty pool")
	}
	chains, err := leaf.Verify(x509.VerifyOptions{DNSName: "www.google.com", Intermediates: inter, CurrentTime: at})
	if err != nil {
		t.Fatalf("with the embedded roots: %v", err)
	}
	chain := chains[0]
	t.Logf("verified: %s <- %s <- %s", chain[0].Subject.CommonName, chain[1].Subject.CommonName, chain[2].Subject.CommonName)
	if chain[len(chain)-1].Subject.CommonName != "GTS Root R1" {
		t.Errorf("chain ends at %s, want GTS Root R1", chain[len(chain)-1].Subject)
	}

	// And a TLS client still refuses a certificate no public CA signed.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	_, err = client.Get(srv.URL)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a self-signed server: %v, want an unknown authority", err)
	}
}
