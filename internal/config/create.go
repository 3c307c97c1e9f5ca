package config

import (
	"flag"
	"fmt"
	"math"
)

// Create bounds what each API token (by name) may create through
// JobService.CreateJob, checked before Kling is called. Zero means no
// limit.
type Create struct {
	// MaxJobsInFlight bounds a token's created jobs that have not finished.
	MaxJobsInFlight int
	// MaxUnitsPerDay bounds the Kling units charged for a token's jobs
	// that finished this UTC day.
	MaxUnitsPerDay float64
}

func registerCreateFlags(fs *flag.FlagSet, c *Create) {
	fs.IntVar(&c.MaxJobsInFlight, "max-jobs-in-flight", 0, "CreateJob: jobs each API token may have created and not yet finished (0: no limit)")
	fs.Float64Var(&c.MaxUnitsPerDay, "max-units-per-day", 0, "CreateJob: Kling units each API token's finished jobs may be charged per UTC day before its creates are refused (0: no limit)")
}

func (c *Create) validate() []error {
	var errs []error
	if c.MaxJobsInFlight < 0 {
		errs = append(errs, fmt.Errorf("--max-jobs-in-flight %d: must not be negative (0: no limit)", c.MaxJobsInFlight))
	}
	if c.MaxUnitsPerDay < 0 || math.IsNaN(c.MaxUnitsPerDay) || math.IsInf(c.MaxUnitsPerDay, 0) {
		errs = append(errs, fmt.Errorf("--max-units-per-day %g: want a finite number, at least 0 (0: no limit)", c.MaxUnitsPerDay))
	}
	return errs
}
