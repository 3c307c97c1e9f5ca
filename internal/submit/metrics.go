package submit

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of klingfan_job_creates_total.
const (
	outcomeCreated  = "created"  // Kling created a task
	outcomeResolved = "resolved" // a lost answer's task was found by its external id
	outcomeReplayed = "replayed" // the request id's job was answered again
	outcomeRefused  = "refused"  // Kling refused the task
	outcomeBudget   = "budget"   // the token's budget refused it before Kling was called
	outcomeUnknown  = "unknown"  // no answer from Kling: the next attempt looks it up
)

func newCreates(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "klingfan_job_creates_total",
		Help: "CreateJob requests, by outcome (created, resolved, replayed, refused, budget, unknown).",
	}, []string{"outcome"})
	for _, o := range []string{outcomeCreated, outcomeResolved, outcomeReplayed, outcomeRefused, outcomeBudget, outcomeUnknown} {
		c.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}
