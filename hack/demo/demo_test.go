package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
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
			runErr <- run(ctx, out, options{Root: root, Namespace: "demo", ReadyTimeout: 2 * time.Minute, OnReady: func(ri readyInfo) {
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
		if got := ri.InletURLs[key.Name]; got == "" || got != cs.Status.InletURL {
			t.Errorf("%s: demo reported inlet %q, status has %q", key, got, cs.Status.InletURL)
		}
		resp, err := http.Post(cs.Status.InletURL, "application/json", strings.NewReader(`{"loyalty":{"points":120}}`))
		if err != nil {
			t.Errorf("post an event to the inlet: %v", err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("post an event to the inlet: status %d, want 200", resp.StatusCode)
		}
	}
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
	if diff := cmp.Diff([]string{"NAME", "READY", "REASON", "DATAFLOW", "INLET", "AGE"}, strings.Fields(lines[header])); diff != "" {
		t.Errorf("table columns (-want +got):\n%s", diff)
	}
	for i, key := range info.Sources {
		row := strings.Fields(lines[header+1+i])
		if len(row) != 6 || row[0] != key.Name || row[1] != "True" || row[2] != v1alpha1.ReasonSucceeded || row[4] != info.InletURLs[key.Name] {
			t.Errorf("table row for %s = %q", key.Name, row)
		}
	}
	for _, want := range []string{"export KUBECONFIG=" + info.Kubeconfig + "\n", info.InletURLs[info.Sources[0].Name]} {
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
