package aepspec_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/aepspec"
)

// CI lays the specs out as ../shared/reference beside the clone; Dir must find
// them from any package folder of a clone at <workplace>/<clone> without
// AEP_SPEC_DIR, and must honour AEP_SPEC_DIR when it is set.
func TestDirFindsSharedBesideTheClone(t *testing.T) {
	work := t.TempDir()
	specs := filepath.Join(work, "shared", "reference")
	clone := filepath.Join(work, "capillary-operator")
	pkg := filepath.Join(clone, "internal", "aepspec")
	for _, d := range []string{specs, pkg} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(specs, aepspec.FlowServiceFile), filepath.Join(specs, aepspec.DataPrepFile),
		filepath.Join(clone, "go.mod")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(pkg)

	t.Setenv(aepspec.EnvDir, "")
	if got, err := aepspec.Dir(); err != nil || got != specs {
		t.Errorf("Dir() = %q, %v; want %q", got, err, specs)
	}

	other := t.TempDir()
	t.Setenv(aepspec.EnvDir, other)
	if got, err := aepspec.Dir(); err == nil {
		t.Errorf("Dir() with %s=%s (no specs there) = %q, want an error", aepspec.EnvDir, other, got)
	}
	t.Setenv(aepspec.EnvDir, specs)
	if got, err := aepspec.Dir(); err != nil || got != specs {
		t.Errorf("Dir() with %s set = %q, %v; want %q", aepspec.EnvDir, got, err, specs)
	}
}
