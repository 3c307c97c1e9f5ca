// Package report holds what a reconcile pass reports: AdminService.Reconcile
// answers it as a ReconcileReport, and /readyz shows the last one. It
// imports nothing of klingfan, so any layer may hold a report.
package report

import "time"

// Report is what one pass found and did.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Since is the oldest update time the pass listed.
	Since        time.Time `json:"since"`
	DryRun       bool      `json:"dry_run,omitempty"`
	TasksChecked int       `json:"tasks_checked"`
	// Recovered lists the states that were missing from the log (appended
	// unless DryRun).
	Recovered []Recovery `json:"recovered"`
	// StaleQueries counts the jobs left non-terminal past the stale
	// threshold that the pass asked Kling about one by one, by outcome:
	// found (Kling answered; a missing state is in Recovered), not_found,
	// skipped.
	StaleQueries map[string]int `json:"stale_queries,omitempty"`
	// Listings are the lists the pass walked, one per configured legacy
	// family and one per shared cursor listing (tasks, solutions) with the
	// families it covers.
	Listings []Listing `json:"listings,omitempty"`
	// Unqueryable names the families Kling documents no query for (text to
	// speech answers its create request with the result): nothing to
	// reconcile there.
	Unqueryable []string `json:"unqueryable,omitempty"`
	// APIErrors counts Kling API errors by code label.
	APIErrors map[string]int `json:"api_errors,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// Recovery is one state the pass found missing.
type Recovery struct {
	JobID    string `json:"job_id"`
	Status   string `json:"status"`
	Family   string `json:"family"`
	Sequence uint64 `json:"sequence,omitempty"`
	// Superseded is set when the guard found the job's outcome logged by
	// a callback in the meantime, so nothing was appended.
	Superseded bool `json:"superseded,omitempty"`
}

// Listing is one list a pass walked.
type Listing struct {
	// Name is the family's name, or the shared listing's ("tasks",
	// "solutions").
	Name string `json:"name"`
	// Families are the families the listing covers.
	Families []string `json:"families"`
	// Tasks counts the tasks it listed (updated since the pass's start or
	// not).
	Tasks int    `json:"tasks"`
	Error string `json:"error,omitempty"`
}
