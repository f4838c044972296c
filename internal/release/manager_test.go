package release_test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/internal/release"
)

// contractFlags are the flags /work/shared/CONTRACT.md names that the
// manager has today; TestManagerFromImage also wants every flag of the
// operator's own flag set.
var contractFlags = []string{
	"ims-url", "platform-url", "resync-interval", "max-concurrent-reconciles", "kubeconfig",
	"metrics-bind-address", "health-probe-bind-address", "leader-elect", "zap-log-level",
	"stalled-retry-interval", "retry-base-delay", "retry-max-delay", "adobe-qps", "adobe-burst",
	"adobe-timeout", "adobe-max-attempts", "ims-scopes", "watch-namespaces", "leader-election-id",
	"leader-election-namespace", "leader-election-lease-duration", "leader-election-release-on-cancel",
	"metrics-secure", "allow-insecure-endpoints", "reconcile-timeout",
}

// TestManagerFromImage builds the manager as `make image` does (a real
// build, about a minute with a warm cache, several with a cold one), takes
// the binary out of the image's layer and runs it as the image would: no
// system roots, no HOME, nothing from the build machine. It prints the
// contract's flags and its stamp; the binary is static, built with
// -trimpath and CGO_ENABLED=0, and has the fallback roots linked in.
func TestManagerFromImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the manager")
	}
	arch := runtime.GOARCH
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	img, err := release.BuildImage(ctx, repoRoot(t), t.TempDir(), arch, testStamp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %s", time.Since(start).Round(time.Second))

	hdrs, files := layerFiles(t, img)
	if len(hdrs) != 1 {
		t.Fatalf("%d files in the layer, want the manager only", len(hdrs))
	}
	bin := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(bin, files["manager"], 0o755); err != nil {
		t.Fatal(err)
	}

	// Static: no ELF interpreter, so no libc is needed in the image.
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the manager has an ELF interpreter: not static")
		}
	}
	_ = ef.Close()
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": arch} {
		if settings[k] != v {
			t.Errorf("build setting %s = %q, want %q", k, settings[k], v)
		}
	}
	if _, ok := settings["vcs.revision"]; ok {
		t.Error("the binary carries git's vcs settings: -buildvcs=false is missing, a build without .git would differ")
	}
	var fallback bool
	for _, d := range bi.Deps {
		fallback = fallback || d.Path == "golang.org/x/crypto/x509roots/fallback"
	}
	if !fallback {
		t.Error("golang.org/x/crypto/x509roots/fallback is not linked in: the empty image would have no roots")
	}

	if runtime.GOOS != "linux" {
		t.Skip("the manager is a linux binary")
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(noSystemRoots(t), "PATH=/nonexistent")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil && !strings.Contains(strings.Join(args, " "), "help") {
			t.Fatalf("manager %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	if got, want := strings.TrimSpace(run("--version")), testStamp.Version+" "+testStamp.Revision; got != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
	help := run("--help")
	want := map[string]bool{"version": true}
	for _, f := range contractFlags {
		want[f] = true
	}
	// And every flag main.go binds.
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	opts := manager.Defaults()
	opts.BindFlags(fs)
	(&zap.Options{}).BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) { want[f.Name] = true })
	missing := false
	for f := range want {
		if !strings.Contains(help, "\n  -"+f+" ") && !strings.Contains(help, "\n  -"+f+"\n") {
			t.Errorf("--help does not list -%s", f)
			missing = true
		}
	}
	if missing {
		t.Logf("--help:\n%s", help)
	}
}
