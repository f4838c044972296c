package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	_ "github.com/aepoperator/capillary-operator/controllers"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	raw, err := os.ReadFile(repoPath(t, "docs", "grafana", "capillary-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("docs/grafana/capillary-operator.json: %v", err)
	}
	return d
}

// queries returns every PromQL expression of the dashboard: panel targets
// and template variable queries.
func queries(d grafanaDashboard) []string {
	var out []string
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			out = append(out, v.Definition)
		}
	}
	return out
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promVariables = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	labelValues   = regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)`)
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// metricNames pulls the metric names out of a PromQL expression: what is
// left once strings, matchers, ranges, grouping clauses and variables are
// gone, that is not a function call, keyword or number.
func metricNames(expr string) []string {
	var names []string
	for _, m := range labelValues.FindAllStringSubmatch(expr, -1) {
		names = append(names, m[1])
	}
	expr = labelValues.ReplaceAllString(expr, " ")
	for _, re := range []*regexp.Regexp{promStrings, promMatchers, promRanges, promGrouping, promVariables} {
		expr = re.ReplaceAllString(expr, " ")
	}
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promKeywords[strings.ToLower(name)] {
			continue
		}
		if loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue // the exponent or suffix of a number
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.95, sum by (operation, le) (rate(capillary_adobe_request_duration_seconds_bucket{code!~"2..", x="a{b}"}[$__rate_interval]))) / on(job) group_left(pod) up{job=~"$job"} or vector(0) and label_values(capillary_source_condition, namespace)`)
	sort.Strings(got)
	want := []string{"capillary_adobe_request_duration_seconds_bucket", "capillary_source_condition", "up"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("metricNames = %q, want %q", got, want)
	}
}

// registered reports whether the operator's process registers a metric of
// that name in controller-runtime's registry (the one /metrics serves):
// registering a probe of the same name must clash. Series of a histogram
// (_bucket, _sum, _count) belong to their base name.
func registered(name string) bool {
	try := func(n string) bool {
		probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: n, Help: "probe for the dashboard test"})
		if err := metrics.Registry.Register(probe); err != nil {
			return true // already registered, or the same name with other labels
		}
		metrics.Registry.Unregister(probe)
		return false
	}
	if try(name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && try(base) {
			return true
		}
	}
	return false
}

// TestDashboard: the dashboard is valid JSON with unique panel IDs on a
// 24-column grid, reads its data source from a variable, and queries only
// metrics the operator registers; every capillary_* metric the operator
// defines appears on it.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	ids := map[int]string{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
				t.Errorf("panel %q: gridPos %+v off the 24-column grid", p.Title, p.GridPos)
			}
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				if uid, _ := p.Datasource["uid"].(string); uid != "${datasource}" {
					t.Errorf("panel %q: data source %v, want the ${datasource} variable", p.Title, p.Datasource)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	// The operator's parts register their metrics when built (the
	// controller's on import), observed or not.
	ims.NewCache()
	if _, err := flowservice.New(flowservice.WithBaseURL(flowservice.DefaultBaseURL)); err != nil {
		t.Fatalf("build the Adobe client: %v", err)
	}
	used := map[string]bool{}
	// The example alerts in docs/monitoring.md are held to the same rule.
	exprLine := regexp.MustCompile(`(?m)^\s+expr: (.+)$`)
	alerts := exprLine.FindAllStringSubmatch(readFile(t, repoPath(t, "docs", "monitoring.md")), -1)
	if len(alerts) == 0 {
		t.Error("docs/monitoring.md shows no alert expression")
	}
	// And the PrometheusRule shipped in config/prometheus.
	rules := exprLine.FindAllStringSubmatch(readFile(t, repoPath(t, "config", "prometheus", "rules.yaml")), -1)
	if len(rules) < 6 {
		t.Errorf("config/prometheus/rules.yaml has %d alert expressions, want the 6 documented", len(rules))
	}
	alerts = append(alerts, rules...)
	var alertExprs []string
	for _, m := range alerts {
		alertExprs = append(alertExprs, m[1])
	}
	dashboard := queries(d)
	for i, q := range append(dashboard, alertExprs...) {
		names := metricNames(q)
		if len(names) == 0 {
			t.Errorf("query %q names no metric", q)
		}
		for _, n := range names {
			if i < len(dashboard) {
				used[n] = true
			}
			if !registered(n) {
				t.Errorf("query %q reads %s, which the operator does not register", q, n)
			}
		}
	}
	for _, n := range operatorMetricNames(t) {
		if !used[n] && !used[n+"_bucket"] {
			t.Errorf("the operator's metric %s is on no panel", n)
		}
	}
}

// operatorMetricNames lists the capillary_* metrics defined in the Go sources.
func operatorMetricNames(t *testing.T) []string {
	t.Helper()
	// Vectors name their metric in Opts; collectors in NewDesc.
	re := regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(capillary_[a-z0-9_]+)"`)
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "test" || e.Name() == "hack" || e.Name() == "bin" || e.Name() == "dist") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatal("found no capillary_* metric in the sources")
	}
	return out
}
