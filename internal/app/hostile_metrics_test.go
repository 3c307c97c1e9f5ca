package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/currency"

	"github.com/klingfan/klingfan/internal/apptest"
)

// metricLines returns the lines of /metrics that start with prefix.
func metricLines(t *testing.T, srv *apptest.Server, prefix string) []string {
	t.Helper()
	resp, err := http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return out
}

// expectBoundedLabels: signed deliveries whose billing names currencies
// no one has (three letters each, like a real code) are counted, but
// under "other": a sender cannot mint a series per delivery.
func expectBoundedLabels(t *testing.T) {
	f := startFanout(t)
	const jobs = 40
	for i, n := 0, 0; n < jobs; i++ {
		cur := fmt.Sprintf("Q%c%c", 'A'+i/26, 'A'+i%26)
		if _, err := currency.ParseISO(cur); err == nil {
			continue // a real one (QAR)
		}
		n++
		body := fmt.Appendf(nil, `{"id":"cur-%d","status":"succeeded","create_time":1781080600000,"update_time":1781080631250,`+
			`"outputs":[{"type":"audio","id":"a%d","mp3_url":"https://cdn.example/%d.mp3"}],`+
			`"billing":[{"charge_type":"cash","amount":"1","currency":%q}]}`, i, i, i, cur)
		if status, out := f.srv.Post(t, "/webhooks/klingai", signed(body), body); status != http.StatusOK {
			t.Fatalf("post: status %d: %s", status, out)
		}
	}
	var series []string
	apptest.Eventually(t, 30*time.Second, "every job's charge counted", func() bool {
		series = metricLines(t, f.srv, "klingfan_job_cash_total{")
		var sum float64
		for _, line := range series {
			var v float64
			if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
				sum += v
			}
		}
		return sum == jobs
	})
	if len(series) != 1 || !strings.Contains(series[0], `currency="other"`) {
		t.Fatalf("%d cash series for %d made-up currencies, want one labelled other: %v", len(series), jobs, series)
	}
}
