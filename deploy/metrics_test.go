package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

// prometheusOwn are series Prometheus makes itself for every target.
var prometheusOwn = map[string]bool{"up": true}

// The dashboard and the alert rules name only metrics klingfan exports:
// a real server is started, given one delivery (so labelled series
// exist), and scraped.
func TestDashboardsAndAlertsNameExportedMetrics(t *testing.T) {
	exported := scrapeNames(t)
	for _, c := range []struct {
		file  string
		exprs func(t *testing.T, path string) []string
	}{
		{"grafana/klingfan-dashboard.json", dashboardExprs},
		{"prometheus/klingfan-alerts.yaml", alertExprs},
	} {
		t.Run(c.file, func(t *testing.T) {
			exprs := c.exprs(t, c.file)
			if len(exprs) == 0 {
				t.Fatal("no expressions found")
			}
			named := 0
			for _, e := range exprs {
				names := metricNames(e)
				if len(names) == 0 {
					t.Errorf("expression names no metric: %s", e)
				}
				for _, n := range names {
					named++
					if !exported[n] && !prometheusOwn[n] {
						t.Errorf("%s is not a metric klingfan exports (in %s)", n, e)
					}
				}
			}
			t.Logf("%d expressions, %d metric references", len(exprs), named)
		})
	}
}

// scrapeNames returns every series name a running klingfan exports, once it
// has taken a delivery, folded a billed job and failed a reconcile pass,
// so the labelled series exist (histogram series included).
func scrapeNames(t *testing.T) map[string]bool {
	t.Helper()
	const secret = "deploy-test-secret"
	// The reconciler's metrics exist only on a replica that runs it, so it
	// is configured here, against a loopback port nothing listens on: one
	// pass on request then fails and exports the passes and API-error
	// series, as a real failing reconciler would.
	srv := apptest.Start(t, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret), apptest.WithConfig(func(c *config.Config) {
		c.Reconcile.APIURL = "http://" + closedLoopbackAddr(t)
		c.Reconcile.APIKey = "deploy-test-key"
		c.Reconcile.WebhookID = "deploy-test"
		c.Reconcile.Interval = 0
	}))
	body := []byte(`{"event":"video.completed","data":{"job_id":"metrics-1"}}`)
	if status, out := srv.Post(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), body)}}, body); status != http.StatusOK {
		t.Fatalf("delivery: %d %s", status, out)
	}
	// A finished Kling job with unit and cash billing, so the job outcome
	// and cost series exist once the projection folds it.
	hookSecret := verify.NewStandardSecret()
	active := true
	if _, err := gatewayv1.NewWebhookServiceClient(srv.DialAdmin(t)).CreateWebhook(context.Background(), &gatewayv1.CreateWebhookRequest{
		WebhookId: "deploy-test", Secret: hookSecret,
		Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, Active: &active},
	}); err != nil {
		t.Fatal(err)
	}
	key, err := verify.DecodeStandardSecret(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	job := []byte(fmt.Sprintf(`{"task_id":"metrics-job","task_status":"succeed","created_at":%d,"updated_at":%d,`+
		`"final_unit_deduction":"2.5","final_balance_deduction":{"quota":"0.7","list_price":"1"},"task_result":{"videos":[{"id":"v","url":"https://x.invalid/v.mp4","duration":"5"}]}}`,
		now.Add(-time.Minute).UnixMilli(), now.UnixMilli()))
	if status, out := srv.Post(t, "/webhooks/kling/deploy-test", http.Header{
		verify.HeaderWebhookID:        {"msg-metrics-job"},
		verify.HeaderWebhookTimestamp: {strconv.FormatInt(now.Unix(), 10)},
		verify.HeaderWebhookSignature: {verify.SignStandard(key, "msg-metrics-job", now, job)},
	}, job); status != http.StatusOK {
		t.Fatalf("job delivery: %d %s", status, out)
	}
	if resp, err := gatewayv1.NewAdminServiceClient(srv.DialAdmin(t)).Reconcile(context.Background(), &gatewayv1.ReconcileRequest{}); err != nil || resp.GetReport().GetError() == "" {
		t.Fatalf("a pass against a closed port answered %v, %v; want a report of the failure", resp, err)
	}
	var names map[string]bool
	apptest.Eventually(t, 10*time.Second, "job cost series exported", func() bool {
		names = scrape(t, srv.HTTPURL+"/metrics")
		return names["klingfan_job_cash_total"] && names["klingfan_job_units_total"]
	})
	return names
}

// scrape returns every series name the metrics endpoint at url exports,
// so the labelled series exist (histogram series included).
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

// closedLoopbackAddr returns a loopback address nothing listens on: a
// port the kernel handed out and that was closed again.
func closedLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// dashboardExprs collects the queries of every panel (rows included) and
// of the template variables.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, r := range ps {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			exprs = append(exprs, v.Definition)
		}
	}
	return exprs
}

func alertExprs(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert  string `json:"alert"`
				Record string `json:"record"`
				Expr   string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"}
)

// metricNames finds the metric names a PromQL expression (or a Grafana
// label_values query) reads: identifiers that are not functions, keywords,
// label names inside matchers or grouping clauses, or strings.
func metricNames(expr string) []string {
	expr = promStrings.ReplaceAllString(expr, " ")
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	// label_values(metric, label): the second argument is a label.
	expr = regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,[^)]*\)`).ReplaceAllString(expr, "$1")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		word := expr[loc[0]:loc[1]]
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "0123456789.$") {
			continue // a number, a duration or a Grafana variable
		}
		if strings.HasPrefix(rest, "(") || slices.Contains(promKeywords, strings.ToLower(word)) {
			continue
		}
		if !slices.Contains(names, word) {
			names = append(names, word)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		name, expr string
		want       []string
	}{
		{"selector", `klingfan_log_ready == 0`, []string{"klingfan_log_ready"}},
		{"matchers and range", `rate(klingfan_ingest_deliveries_total{outcome="unavailable", webhook=~"a|b"}[5m])`, []string{"klingfan_ingest_deliveries_total"}},
		{"grouping before", `sum by (instance, le) (rate(x_bucket[$__rate_interval]))`, []string{"x_bucket"}},
		{"grouping after", `sum(rate(a_total[5m])) by (grpc_code) / on (instance) group_left b`, []string{"a_total", "b"}},
		{"quantile", `histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 1`, []string{"h_bucket"}},
		{"grafana variable", `go_goroutines{instance=~"$instance"}`, []string{"go_goroutines"}},
		{"label_values", `label_values(klingfan_hub_subscribers, instance)`, []string{"klingfan_hub_subscribers"}},
		{"binary operators", `a > bool 1 and b unless c offset 5m`, []string{"a", "b", "c"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := metricNames(c.expr); !slices.Equal(got, c.want) {
				t.Errorf("metricNames(%q) = %v, want %v", c.expr, got, c.want)
			}
		})
	}
}
