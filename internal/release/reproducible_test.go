package release_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestReproducibleAcrossClones builds the image of the checkout's HEAD
// twice, as `make image` does, from two clones at different paths, with
// different HOME, TMPDIR and umask, and wants the same digest. The first
// build uses this machine's build cache; the second a new, empty one in its
// own HOME, so it compiles everything again (several minutes on two cores):
// the two share nothing but the downloaded modules (GOPROXY=off: the
// builds need no network).
func TestReproducibleAcrossClones(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: two builds of the manager, one of them from scratch")
	}
	if runtime.GOOS == "windows" {
		t.Skip("umask")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root := repoRoot(t)
	rev := gitOut(t, root, "rev-parse", "HEAD")
	goEnv := func(k string) string { return goOut(t, root, "env", k) }
	modCache, buildCache := goEnv("GOMODCACHE"), goEnv("GOCACHE")
	goBin := filepath.Join(goOut(t, root, "env", "GOROOT"), "bin")
	_, makeErr := exec.LookPath("make")

	base := t.TempDir()
	builds := []struct {
		clone, umask string
		sharedCache  bool
	}{
		{clone: filepath.Join(base, "a", "capillary-operator"), umask: "022", sharedCache: true},
		{clone: filepath.Join(base, "somewhere", "else", "entirely", "co"), umask: "077"},
	}
	var digests []string
	for i, b := range builds {
		start := time.Now()
		home := filepath.Join(base, fmt.Sprintf("home%d", i))
		tmp := filepath.Join(home, "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		env := []string{
			"PATH=" + goBin + string(os.PathListSeparator) + os.Getenv("PATH"),
			"HOME=" + home, "TMPDIR=" + tmp, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
			"GOMODCACHE=" + modCache, "GOPROXY=off", "GOFLAGS=", "GOTOOLCHAIN=local",
		}
		if b.sharedCache {
			env = append(env, "GOCACHE="+buildCache)
		}
		// make image, or what it runs when there is no make.
		build := "go run ./hack/image"
		if makeErr == nil {
			build = "make image"
		}
		script := fmt.Sprintf("umask %s && git clone --quiet --no-checkout %q %q && cd %q && git checkout --quiet %s && %s",
			b.umask, root, b.clone, b.clone, rev, build)
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = env
		cmd.Dir = home
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("build %d (%s): %v\n%s", i+1, script, err, out.String())
		}
		d, err := os.ReadFile(filepath.Join(b.clone, "bin", "image", "image-digest"))
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, strings.TrimSpace(string(d)))
		t.Logf("build %d in %s (umask %s, cache shared %t): %s", i+1, b.clone, b.umask, b.sharedCache, digests[i])
		t.Logf("  took %s", time.Since(start).Round(time.Second))
	}
	if digests[0] != digests[1] {
		t.Errorf("the same commit %s gave two images: %s and %s", rev, digests[0], digests[1])
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return cmdOut(t, dir, "git", args...)
}

func goOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return cmdOut(t, dir, "go", args...)
}

func cmdOut(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}
