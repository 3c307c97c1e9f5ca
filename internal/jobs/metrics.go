package jobs

import (
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/text/currency"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobstate"
)

// Label bounds: a model name is a label value only while it looks like one
// and while fewer than maxModels distinct names have been seen, so a sender
// cannot grow the metrics without bound.
const (
	maxModels      = 64
	maxModelLength = 64
	// otherModel replaces a model name that is not a bounded label value.
	otherModel = "other"
	// unknownLabel stands for a value the job does not carry.
	unknownLabel = "unknown"
)

// Metrics counts finished jobs, what they cost and how long they took. A
// job is counted by the one write that makes its state terminal, so a
// duplicate delivery or a second replica folding the same event counts
// nothing. Totals over a cluster are the sum over replicas.
type Metrics struct {
	units    *prometheus.CounterVec
	cash     *prometheus.CounterVec
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
	folded   prometheus.Gauge

	mu     sync.Mutex
	models map[string]struct{} // guarded by mu
}

// NewMetrics registers the job metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"webhook", "kind", "model"}
	m := &Metrics{
		units: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_job_units_total",
			Help: "Units Kling charged for finished jobs (final_unit_deduction or unit billing), counted once per job.",
		}, labels),
		cash: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_job_cash_total",
			Help: "Cash Kling charged for finished jobs (cash billing), by currency, counted once per job.",
		}, append(labels, "currency")),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_jobs_finished_total",
			Help: "Jobs that reached a terminal status, by status, counted once per job.",
		}, append(labels, "status")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "klingfan_job_duration_seconds",
			Help:    "Time from a job's creation (or first sight) to its completion.",
			Buckets: []float64{5, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200},
		}, labels),
		folded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "klingfan_jobs_folded_sequence",
			Help: "The log sequence through which this replica has folded events into the job states.",
		}),
		models: make(map[string]struct{}),
	}
	reg.MustRegister(m.units, m.cash, m.finished, m.duration, m.folded)
	return m
}

// projected records the fold's position.
func (m *Metrics) projected(seq uint64) {
	if m != nil {
		m.folded.Set(float64(seq))
	}
}

// observe counts next when it is the first terminal state of a real (not
// test) job.
func (m *Metrics) observe(prev, next *gatewayv1.JobState, ev *gatewayv1.Event) {
	if m == nil || ev.GetTest() || !jobstate.Terminal(next.GetJob().GetStatus()) || jobstate.Terminal(prev.GetJob().GetStatus()) {
		return
	}
	job := next.GetJob()
	webhook, kind, model := next.GetWebhookId(), kindLabel(job), m.modelLabel(job.GetModel())
	m.finished.WithLabelValues(webhook, kind, model, statusLabel(job.GetStatus())).Inc()
	if units, ok := Units(job); ok {
		m.units.WithLabelValues(webhook, kind, model).Add(units)
	}
	for currency, v := range Cash(job) {
		m.cash.WithLabelValues(webhook, kind, model, currency).Add(v)
	}
	if d, ok := jobstate.Duration(next); ok {
		m.duration.WithLabelValues(webhook, kind, model).Observe(d.Seconds())
	}
}

// Units is what the job was charged in units: the sum of its `unit`
// billing entries when it has any (new shape), else the legacy
// final_unit_deduction. ok is false when the sender said nothing.
func Units(job *gatewayv1.Job) (float64, bool) {
	var sum float64
	found := false
	for _, c := range job.GetBilling() {
		if strings.EqualFold(c.GetChargeType(), "unit") {
			if v, ok := amount(c.GetAmount()); ok {
				sum += v
				found = true
			}
		}
	}
	if found {
		return sum, true
	}
	return amount(job.GetUnitsDeducted())
}

// Cash is what the job was charged in money, by currency label: the sum
// of its `cash` billing entries (the legacy final_balance_deduction arrives
// as one of them).
func Cash(job *gatewayv1.Job) map[string]float64 {
	var out map[string]float64
	for _, c := range job.GetBilling() {
		if !strings.EqualFold(c.GetChargeType(), "cash") {
			continue
		}
		v, ok := amount(c.GetAmount())
		if !ok {
			continue
		}
		if out == nil {
			out = make(map[string]float64)
		}
		out[currencyLabel(c.GetCurrency())] += v
	}
	return out
}

// amount parses a decimal string as Kling writes charges.
func amount(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// currencyLabel bounds a currency as a label value: an ISO 4217 code
// (golang.org/x/text/currency knows them), else "other". Three letters
// are not enough: a signed sender could name a new one per delivery and
// mint a series each time.
func currencyLabel(c string) string {
	c = strings.TrimSpace(c)
	if c == "" {
		return unknownLabel
	}
	u, err := currency.ParseISO(c)
	if err != nil {
		return otherModel
	}
	return u.String()
}

// statusLabel is the lower-case status name: "succeeded", "failed", ...
func statusLabel(s gatewayv1.JobStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

// kindLabel names what the job makes: "video", "audio", ..., or
// "unknown" when nothing told.
func kindLabel(job *gatewayv1.Job) string {
	k := job.GetKind()
	if _, known := gatewayv1.JobKind_name[int32(k)]; !known || k == gatewayv1.JobKind_JOB_KIND_UNSPECIFIED {
		return unknownLabel
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "JOB_KIND_"))
}

// modelLabel bounds a model name as a label value.
func (m *Metrics) modelLabel(model string) string {
	if model == "" {
		return unknownLabel
	}
	if len(model) > maxModelLength {
		return otherModel
	}
	for i := 0; i < len(model); i++ {
		c := model[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return otherModel
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.models[model]; ok {
		return model
	}
	if len(m.models) >= maxModels {
		return otherModel
	}
	m.models[model] = struct{}{}
	return model
}
