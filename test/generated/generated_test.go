// Package generated checks that the generated files in the repository (CRD,
// RBAC, DeepCopy) are what `make manifests generate` makes from the code now.
package generated

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
)

func TestGeneratedFilesAreCurrent(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	crdDir, rbacDir, objDir := filepath.Join(tmp, "crd"), filepath.Join(tmp, "rbac"), filepath.Join(tmp, "object")
	// The same generators and paths as the Makefile, written to a scratch folder.
	cmd := exec.Command("go", "tool", "controller-gen",
		"rbac:roleName=manager-role", "crd", "object:headerFile=hack/boilerplate.go.txt",
		"paths=./api/...;./controllers/...",
		"output:crd:artifacts:config="+crdDir,
		"output:rbac:artifacts:config="+rbacDir,
		"output:object:dir="+objDir,
	)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, out)
	}
	pairs := []struct{ fresh, checkedIn string }{
		{filepath.Join(crdDir, "sources.aepoperator.dev_capillarysources.yaml"), "config/crd/bases/sources.aepoperator.dev_capillarysources.yaml"},
		{filepath.Join(crdDir, "sources.aepoperator.dev_clusteradobecredentials.yaml"), "config/crd/bases/sources.aepoperator.dev_clusteradobecredentials.yaml"},
		{filepath.Join(rbacDir, "role.yaml"), "config/rbac/role.yaml"},
		{filepath.Join(objDir, "zz_generated.deepcopy.go"), "api/v1alpha1/zz_generated.deepcopy.go"},
	}
	for _, p := range pairs {
		fresh, err := os.ReadFile(p.fresh)
		if err != nil {
			t.Errorf("controller-gen wrote no %s: %v", filepath.Base(p.fresh), err)
			continue
		}
		current, err := os.ReadFile(filepath.Join(root, p.checkedIn))
		if err != nil {
			t.Errorf("read %s: %v", p.checkedIn, err)
			continue
		}
		if !bytes.Equal(fresh, current) {
			t.Errorf("%s is stale: run `make manifests generate` and commit the result", p.checkedIn)
		}
	}
}
