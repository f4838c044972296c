package security_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/leakcheck"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// Endpoints are HTTPS; plain HTTP is only for a loopback emulator and only
// with --allow-insecure-endpoints. The manager refuses to start otherwise.
func TestEndpointValidation(t *testing.T) {
	cases := []struct {
		name          string
		url           string
		allowInsecure bool
		ok            bool
	}{
		{"Adobe production", "https://platform.adobe.io", false, true},
		{"another HTTPS host (a proxy, a regional IMS)", "https://ims-na1-stg1.adobelogin.com", false, true},
		{"loopback emulator with the flag", "http://127.0.0.1:8089", true, true},
		{"localhost emulator with the flag", "http://localhost:8089", true, true},
		{"IPv6 loopback emulator with the flag", "http://[::1]:8089", true, true},
		{"loopback emulator without the flag", "http://127.0.0.1:8089", false, false},
		{"plain HTTP to a remote host, even with the flag", "http://platform.adobe.io", true, false},
		{"plain HTTP to a private address, even with the flag", "http://10.0.0.5:8080", true, false},
		{"plain HTTP to cloud metadata, even with the flag", "http://169.254.169.254", true, false},
		{"a host that only starts like localhost", "http://localhost.attacker.example", true, false},
		{"credentials in the URL", "https://user:secret@platform.adobe.io", false, false},
		{"a query in the URL", "https://platform.adobe.io/?client_secret=x", false, false},
		{"another scheme", "ftp://platform.adobe.io", false, false},
		{"a file", "file:///etc/passwd", true, false},
		{"not absolute", "platform.adobe.io", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, field := range []string{"ims", "platform"} {
				o := manager.Defaults()
				o.AllowInsecureEndpoints = tc.allowInsecure
				if field == "ims" {
					o.IMSURL = tc.url
				} else {
					o.PlatformURL = tc.url
				}
				err := o.Validate()
				if (err == nil) != tc.ok {
					t.Errorf("%s URL %q (allow insecure %v): Validate() = %v, want ok=%v", field, tc.url, tc.allowInsecure, err, tc.ok)
				}
				if !tc.ok {
					if _, err := manager.New(suite.Env.Config, o); err == nil {
						t.Errorf("%s URL %q: the manager was built anyway", field, tc.url)
					}
				}
			}
		})
	}
}

// TLS verification is on with the manager's own HTTP client: an HTTPS
// endpoint whose certificate no trusted CA signed gets no request at all
// (not even the token request carrying the client secret), and the resource
// says Adobe cannot be reached. The same endpoint, trusted, works: the
// refusal was the certificate.
func TestTLSVerification(t *testing.T) {
	emu, err := url.Parse(suite.Env.AdobeURL)
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(emu)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		rp.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.StartTLS()
	defer srv.Close()

	ns := suite.NewNamespace(t, "tls")
	options := func() manager.Options {
		o := suite.Env.ManagerOptions()
		o.IMSURL, o.PlatformURL = srv.URL, srv.URL
		o.AllowInsecureEndpoints = false
		o.WatchNamespaces = ns
		o.ResyncInterval = time.Hour
		return o
	}

	untrusted := options() // the production HTTP client: system roots only
	m, err := suite.Env.StartManager(untrusted)
	if err != nil {
		t.Fatal(err)
	}
	cs := localenvtest.NewSource(ns, "tls", localenvtest.Mappings(localenvtest.PointsMapping))
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "unable to reach Adobe", func(cs *v1alpha1.CapillarySource) bool {
		c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionCredentialsReady)
		return c != nil && c.Reason == v1alpha1.ReasonAdobeUnavailable
	})
	if err := m.Stop(); err != nil {
		t.Errorf("operator stopped with an error: %v", err)
	}
	if n := served.Load(); n != 0 {
		t.Fatalf("the untrusted endpoint served %d requests: TLS verification is off", n)
	}
	t.Logf("untrusted certificate: %s", meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionCredentialsReady).Message)

	trusted := options()
	rec := suite.NewRecorder("", srv.Client().Transport)
	trusted.HTTPClient = rec.Client()
	m, err = suite.Env.StartManager(trusted)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Stop(); err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	}()
	// A new generation skips the backoff the untrusted run recorded.
	requestReconcile(t, cs, "trusted")
	suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	if served.Load() == 0 {
		t.Error("the trusted endpoint served nothing")
	}
	suite.DeleteAndWait(t, cs)
}

// urlish finds spec fields that could name a place to send requests.
var urlish = regexp.MustCompile(`(?i)(url|uri|endpoint|host|address|server|domain|callback|webhook|proxy)`)

// notEndpoints are URL-shaped spec fields that are identifiers, never
// dereferenced; TestSpecCannotRedirectTheOperator proves the operator calls
// nothing they name.
var notEndpoints = map[string]string{
	"spec.target.schemaId": "an XDM schema $id, sent to Adobe as data; its pattern pins it to https://ns.adobe.com/",
}

// Endpoints are operator-level: no spec field holds a URL, host or endpoint
// (by name, by format, or by a pattern that admits a URL), so nothing in a
// CapillarySource can redirect the operator (server-side request forgery).
func TestNoSpecFieldIsAnEndpoint(t *testing.T) {
	crd := localenvtest.CRD(t)
	nStrings := 0
	var walk func(path string, s apiextensionsv1.JSONSchemaProps)
	walk = func(path string, s apiextensionsv1.JSONSchemaProps) {
		if s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields {
			t.Errorf("%s keeps unknown fields: anything could hide there", path)
		}
		if s.Type == "string" {
			nStrings++
			name := path[lastDot(path)+1:]
			urlShaped := urlish.MatchString(name) || s.Format == "uri" || s.Format == "hostname" ||
				s.Format == "url" || hasURLPattern(s.Pattern)
			if why, ok := notEndpoints[path]; urlShaped && !ok {
				t.Errorf("spec field %s looks like an endpoint (format %q, pattern %q): endpoints must be operator flags", path, s.Format, s.Pattern)
			} else if ok && !urlShaped {
				t.Errorf("%s is listed as URL-shaped (%s) but is not: drop it from notEndpoints", path, why)
			}
		}
		for name, p := range s.Properties {
			walk(path+"."+name, p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(path+"[]", *s.Items.Schema)
		}
		if s.AdditionalProperties != nil {
			t.Errorf("%s is a free-form map", path)
		}
	}
	for _, v := range crd.Spec.Versions {
		walk("spec", v.Schema.OpenAPIV3Schema.Properties["spec"])
	}
	if nStrings < 10 {
		t.Fatalf("walked only %d string fields: the walk is broken", nStrings)
	}
}

func lastDot(s string) int { return max(strings.LastIndex(s, "."), strings.LastIndex(s, "]")) }

func hasURLPattern(p string) bool {
	return strings.Contains(p, "://") || strings.Contains(p, `:\/\/`)
}

// Whatever a CapillarySource holds, the operator only calls the endpoints
// it was started with: URL-looking mappings and a schema $id naming another
// host send no request anywhere else.
func TestSpecCannotRedirectTheOperator(t *testing.T) {
	ns := suite.NewNamespace(t, "ssrf")
	rec := suite.NewRecorder("", nil)
	o := suite.Env.ManagerOptions()
	o.HTTPClient = rec.Client()
	o.WatchNamespaces = ns
	o.ResyncInterval = time.Hour
	m, err := suite.Env.StartManager(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Stop(); err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	}()
	cs := localenvtest.NewSource(ns, "ssrf", localenvtest.Mappings(localenvtest.PointsMapping))
	cs.Spec.Target.SchemaID = "https://ns.adobe.com/@attacker.example/schemas/x?callback=http://169.254.169.254/"
	cs.Spec.Mappings = []v1alpha1.Mapping{
		{SourceAttribute: "http://169.254.169.254/latest/meta-data/iam", DestinationXdmPath: "https://attacker.example/xdm"},
		{SourceAttribute: "file:///etc/passwd", DestinationXdmPath: "loyalty.points"},
	}
	suite.Create(t, cs)
	suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	want, err := url.Parse(suite.Env.AdobeURL)
	if err != nil {
		t.Fatal(err)
	}
	reqs := rec.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request recorded")
	}
	for _, r := range reqs {
		if r.URL.Scheme != want.Scheme || r.URL.Host != want.Host {
			t.Errorf("request to %s://%s%s: only %s is configured", r.URL.Scheme, r.URL.Host, r.URL.Path, want.Host)
		}
	}
	suite.DeleteAndWait(t, cs)
}

// No credential travels in a URL: every request the operator made in this
// package (token requests included) is checked for credential-named query
// parameters, userinfo and the value of any client secret or token.
func TestNoCredentialInURLs(t *testing.T) {
	ns := suite.NewNamespace(t, "urls")
	// Lost create answers make the operator look objects up by name, so
	// requests with a query are made too.
	if err := suite.Env.Emulator.SetFaults(emulator.Faults{RateLostResponse: 1, Operations: []string{emulator.OpSourceConnectionsCreate}}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = suite.Env.Emulator.SetFaults(emulator.Faults{}) }()
	rec := suite.NewRecorder("", nil)
	o := suite.Env.ManagerOptions()
	o.HTTPClient = rec.Client()
	o.WatchNamespaces = ns
	o.ResyncInterval = time.Hour
	o.RetryBaseDelay = 100 * time.Millisecond
	m, err := suite.Env.StartManager(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Stop(); err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	}()
	cs := localenvtest.NewSource(ns, "urls", localenvtest.Mappings(localenvtest.PointsMapping))
	suite.Create(t, cs)
	suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	suite.DeleteAndWait(t, cs)

	kinds := map[string]int{}
	for _, k := range rec.Secrets() {
		kinds[k]++
	}
	if kinds[leakcheck.KindToken] == 0 {
		t.Fatal("no token recorded: the check would prove nothing")
	}
	sawIMS, sawList := false, false
	for _, r := range rec.Requests() {
		sawIMS = sawIMS || strings.HasSuffix(r.URL.Path, "/ims/token/v3")
		sawList = sawList || r.URL.RawQuery != ""
	}
	if !sawIMS || !sawList {
		t.Fatalf("token request seen %v, request with a query seen %v: the run did not exercise both", sawIMS, sawList)
	}
	for _, f := range rec.URLFindings() {
		t.Error(f)
	}
}

func requestReconcile(t *testing.T, cs *v1alpha1.CapillarySource, token string) {
	t.Helper()
	ctx := context.Background()
	for range 10 {
		cur := suite.WaitFor(t, cs, "readable", func(*v1alpha1.CapillarySource) bool { return true })
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[v1alpha1.ReconcileRequestAnnotation] = token
		if err := suite.Env.Client.Update(ctx, cur); err == nil {
			return
		}
	}
	t.Fatal("could not annotate the resource")
}
