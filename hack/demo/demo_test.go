package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// TestDemo runs the demo twice in a row, as a user would: each run must bring
// the samples to Ready, hand out a working kubeconfig and inlet URL, and
// leave nothing behind when cancelled.
func TestDemo(t *testing.T) {
	if !controlplane.BinariesPresent() {
		if os.Getenv("CI") == "true" {
			t.Fatal(controlplane.ErrNoBinaries)
		}
		t.Skip(controlplane.ErrNoBinaries)
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	smp, err := loadSamples(root + "/config/samples")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		out := &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		var info readyInfo
		runErr := make(chan error, 1)
		go func() {
			// The default (OAuth2), then HMAC: each prints and accepts its own post.
			auth := []emulator.ConnectionAuth{"", emulator.ConnectionAuthHMAC}[i]
			runErr <- run(ctx, out, options{Root: root, Namespace: "demo", ReadyTimeout: 2 * time.Minute, ConnectionAuth: auth, InletWarmup: time.Second, OnReady: func(ri readyInfo) {
				info = ri
				checkReady(t, ri, len(smp.sources))
				cancel()
			}})
		}()
		var err error
		select {
		case err = <-runErr:
		case <-time.After(4 * time.Minute):
			cancel()
			t.Fatalf("run %d: the demo neither became Ready nor stopped; output:\n%s", i+1, out)
		}
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v; output:\n%s", i+1, err, out)
		}
		if info.TempDir == "" {
			t.Fatalf("run %d ended without reaching Ready; output:\n%s", i+1, out)
		}
		if _, err := os.Stat(info.TempDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("run %d left its temporary folder %s behind (stat: %v)", i+1, info.TempDir, err)
		}
		checkOutput(t, out.String(), info)
	}
}

// checkReady looks at the demo's cluster through the kubeconfig it printed,
// as the user would from another terminal, and posts an event to the inlet.
func checkReady(t *testing.T, ri readyInfo, want int) {
	t.Helper()
	if len(ri.Sources) != want {
		t.Errorf("demo applied %d CapillarySources, samples hold %d", len(ri.Sources), want)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", ri.Kubeconfig)
	if err != nil {
		t.Errorf("printed kubeconfig: %v", err)
		return
	}
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Errorf("client from printed kubeconfig: %v", err)
		return
	}
	for _, key := range ri.Sources {
		cs := &v1alpha1.CapillarySource{}
		if err := c.Get(context.Background(), key, cs); err != nil {
			t.Errorf("get %s through the printed kubeconfig: %v", key, err)
			continue
		}
		ready := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != "True" || ready.Reason != v1alpha1.ReasonSucceeded {
			t.Errorf("%s: Ready = %+v, want True/%s", key, ready, v1alpha1.ReasonSucceeded)
		}
		// The demo's sample events: all received, the bad one failed.
		if ing := cs.Status.Ingestion; ing == nil || ing.RecordsIngested != sampleGoodEvents || ing.RecordsFailed != 1 {
			t.Errorf("%s: status.ingestion = %+v, want %d ingested and 1 failed", key, ing, sampleGoodEvents)
		}
		if cs.Status.InletReadyAt == nil {
			t.Errorf("%s: no inletReadyAt", key)
		}
		if got := ri.InletURLs[key.Name]; got == "" || got != cs.Status.InletURL {
			t.Errorf("%s: demo reported inlet %q, status has %q", key, got, cs.Status.InletURL)
		}
		want := map[emulator.ConnectionAuth]v1alpha1.InletAuthentication{
			emulator.ConnectionAuthOAuth2: v1alpha1.InletAuthenticationOAuth2, emulator.ConnectionAuthHMAC: v1alpha1.InletAuthenticationHMAC,
		}[ri.ConnectionAuth]
		if cs.Status.InletAuthentication != want {
			t.Errorf("%s: inletAuthentication %q, want %q for the %s variant", key, cs.Status.InletAuthentication, want, ri.ConnectionAuth)
		}
		secret := &corev1.Secret{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: key.Namespace, Name: cs.Spec.CredentialsSecretRef.Name}, secret); err != nil {
			t.Errorf("get the Secret: %v", err)
			continue
		}
		body := `{"loyalty":{"points":120}}`
		hdr := map[string]string{"x-adobe-flow-id": cs.Status.DataflowID}
		if code := postEvent(t, cs.Status.InletURL, hdr, body); code != http.StatusUnauthorized {
			t.Errorf("%s: an event without authentication: status %d, want 401", key, code)
		}
		switch want {
		case v1alpha1.InletAuthenticationOAuth2:
			tok, err := localenv.IMSToken(context.Background(), ri.AdobeURL, string(secret.Data["clientId"]), string(secret.Data["clientSecret"]))
			if err != nil {
				t.Fatal(err)
			}
			hdr["Authorization"] = "Bearer " + tok
		case v1alpha1.InletAuthenticationHMAC:
			m := hmac.New(sha256.New, secret.Data["sharedSecret"])
			m.Write([]byte(body))
			hdr["x-hmac-sha256"] = hex.EncodeToString(m.Sum(nil))
		}
		if code := postEvent(t, cs.Status.InletURL, hdr, body); code != http.StatusOK {
			t.Errorf("%s: an event posted as docs/operations.md says: status %d, want 200", key, code)
		}
		runPrintedCommands(t, sendEventHelp(ri, cs, key.Namespace), secret)
	}
}

// runPrintedCommands runs the commands the demo prints for sending an event,
// with bash, curl and openssl, and a kubectl that answers from secret: the
// inlet must acknowledge the event.
func runPrintedCommands(t *testing.T, help string, secret *corev1.Secret) {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "openssl", "base64", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("not running the printed commands: no %s on this machine", tool)
			return
		}
	}
	var script strings.Builder
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, "  ") {
			script.WriteString(strings.TrimSpace(line) + "\n")
		}
	}
	bin := t.TempDir()
	var shim strings.Builder
	shim.WriteString("#!/bin/sh\ncase \"$*\" in\n")
	for k, v := range secret.Data {
		fmt.Fprintf(&shim, "  *'{.data.%s}'*) printf %%s '%s' ;;\n", k, base64.StdEncoding.EncodeToString(v))
	}
	shim.WriteString("esac\n")
	if err := os.WriteFile(filepath.Join(bin, "kubectl"), []byte(shim.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-eo", "pipefail", "-c", script.String())
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"inletId"`) {
		t.Errorf("the printed commands did not get an event in (%v):\n%s\noutput:\n%s", err, script.String(), out)
	}
}

func postEvent(t *testing.T, url string, hdr map[string]string, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("post an event to the inlet: %v", err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkOutput: the demo prints the kubectl-style table, the inlet URL and the
// exact export line.
func checkOutput(t *testing.T, out string, info readyInfo) {
	t.Helper()
	lines := strings.Split(out, "\n")
	header := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "$ kubectl get capillarysources -o wide") {
			header = i + 1
			break
		}
	}
	if header < 0 || header+len(info.Sources) >= len(lines) {
		t.Fatalf("no kubectl-style table in the output:\n%s", out)
	}
	if diff := cmp.Diff([]string{"NAME", "READY", "REASON", "DATAFLOW", "INLET", "INGESTED", "FAILED", "AGE"}, strings.Fields(lines[header])); diff != "" {
		t.Errorf("table columns (-want +got):\n%s", diff)
	}
	for i, key := range info.Sources {
		row := strings.Fields(lines[header+1+i])
		if len(row) != 8 || row[0] != key.Name || row[1] != "True" || row[2] != v1alpha1.ReasonSucceeded || row[4] != info.InletURLs[key.Name] ||
			row[5] != fmt.Sprint(sampleGoodEvents) || row[6] != "1" {
			t.Errorf("table row for %s = %q", key.Name, row)
		}
	}
	proof := map[emulator.ConnectionAuth]string{emulator.ConnectionAuthOAuth2: "Authorization: Bearer $TOKEN", emulator.ConnectionAuthHMAC: "x-hmac-sha256: $SIG"}[info.ConnectionAuth]
	for _, want := range []string{"export KUBECONFIG=" + info.Kubeconfig + "\n", info.InletURLs[info.Sources[0].Name], proof, "x-adobe-flow-id: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// syncBuffer is written by the demo's goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
