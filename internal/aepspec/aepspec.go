// Package aepspec loads Adobe's published OpenAPI specs for Flow Service and
// Data Prep and checks HTTP requests against them. The emulator validates every
// request it serves with it, and the client's contract test validates every
// request the client sends, so both sides are held to Adobe's wire format by
// one piece of code.
package aepspec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Spec files and the base paths they serve under the Platform gateway.
const (
	FlowServiceFile = "flow-service.yaml"
	DataPrepFile    = "data-prep.yaml"

	FlowServicePath = "/data/foundation/flowservice"
	DataPrepPath    = "/data/foundation/conversion"

	// EnvDir names the folder holding the spec files, overriding the search.
	EnvDir = "AEP_SPEC_DIR"
)

// ErrNotFound reports that no folder with Adobe's spec files was found.
var ErrNotFound = errors.New("adobe OpenAPI specs not found")

// Dir locates the folder with Adobe's spec files: $AEP_SPEC_DIR when set,
// otherwise the first shared/reference folder found in the ancestors of the
// module root (the specs are public documents kept beside the repository, not
// vendored into it).
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		if hasSpecs(d) {
			return d, nil
		}
		return "", fmt.Errorf("%w: %s=%s has no %s", ErrNotFound, EnvDir, d, FlowServiceFile)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	root := moduleRoot(wd)
	for d := root; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", "reference")
		if hasSpecs(cand) {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", fmt.Errorf("%w: set %s or place them in a shared/reference folder above %s", ErrNotFound, EnvDir, root)
}

func hasSpecs(dir string) bool {
	for _, f := range []string{FlowServiceFile, DataPrepFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

func moduleRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Validator checks requests against the loaded specs.
type Validator struct {
	apis []api
}

type api struct {
	basePath string
	router   routers.Router
}

// gatewayHost is the host the specs' servers are rewritten to; requests are
// routed on their path only, whatever host they were sent to.
const gatewayHost = "platform.adobe.io"

// Load reads flow-service.yaml and data-prep.yaml from dir.
func Load(dir string) (*Validator, error) {
	v := &Validator{}
	for _, s := range []struct{ file, base string }{
		{FlowServiceFile, FlowServicePath},
		{DataPrepFile, DataPrepPath},
	} {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(filepath.Join(dir, s.file))
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", s.file, err)
		}
		fixKnownQuirks(doc)
		// Adobe's examples do not always match their own schemas; they are
		// documentation, not contract, so only the schemas are checked.
		if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
			return nil, fmt.Errorf("validate %s: %w", s.file, err)
		}
		doc.Servers = openapi3.Servers{{URL: "https://" + gatewayHost + s.base}}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", s.file, err)
		}
		v.apis = append(v.apis, api{basePath: s.base, router: router})
	}
	return v, nil
}

// ValidateRequest checks method, path, query, headers and body of r. The body
// is read and put back so the caller can still use it.
func (v *Validator) ValidateRequest(r *http.Request) error {
	var router routers.Router
	for _, a := range v.apis {
		if strings.HasPrefix(r.URL.Path, a.basePath+"/") {
			router = a.router
			break
		}
	}
	if router == nil {
		return fmt.Errorf("no Adobe API is served under %s", r.URL.Path)
	}

	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return fmt.Errorf("read request body: %w", err)
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(body))
	}

	// Route a copy addressed to the gateway host so the spec's server matches.
	routed := r.Clone(r.Context())
	routed.URL = &url.URL{Scheme: "https", Host: gatewayHost, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	routed.Host = gatewayHost
	routed.RequestURI = ""
	if body != nil {
		routed.Body = io.NopCloser(bytes.NewReader(body))
	} else {
		routed.Body = http.NoBody
	}

	route, params, err := router.FindRoute(routed)
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}
	input := &openapi3filter.RequestValidationInput{
		Request:    routed,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			// Adobe's specs declare no security schemes we could check here;
			// the Authorization header is a required parameter and is checked as one.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
		},
	}
	if err := openapi3filter.ValidateRequest(r.Context(), input); err != nil {
		return fmt.Errorf("%s %s does not match Adobe's OpenAPI spec: %w", r.Method, r.URL.Path, err)
	}
	return nil
}
