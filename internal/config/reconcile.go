package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Reconcile configures the reconciler that asks Kling's task query API for
// outcomes whose callbacks never arrived. Credentials come from the
// environment only (KLING_ACCESS_KEY + KLING_SECRET_KEY for the JWT style,
// or KLING_API_KEY), never from flags, and are never logged.
type Reconcile struct {
	APIURL    string
	AccessKey string
	SecretKey string
	APIKey    string
	// Interval between passes; 5m by default when credentials are set, 0
	// disables the periodic passes.
	Interval time.Duration
	Lookback time.Duration
	// Families is the --reconcile-families list as given ("" = all).
	Families  string
	WebhookID string
	// StaleAfter is how long a job may stay submitted or processing before
	// a pass asks Kling about it by id; 0 disables those queries.
	StaleAfter time.Duration

	intervalSet bool
}

// Enabled reports whether credentials are configured, so klingfan can talk
// to Kling's API at all.
func (r Reconcile) Enabled() bool {
	return r.APIKey != "" || (r.AccessKey != "" && r.SecretKey != "")
}

// defaultKlingAPIURL is Kling's international API host.
const defaultKlingAPIURL = "https://api-singapore.klingai.com"

func registerReconcileFlags(fs *flag.FlagSet, r *Reconcile) {
	fs.StringVar(&r.APIURL, "kling-api-url", defaultKlingAPIURL, "Kling API base URL the reconciler queries (credentials: KLING_ACCESS_KEY + KLING_SECRET_KEY, or KLING_API_KEY)")
	fs.Func("reconcile-interval", "time between reconcile passes (default 5m when Kling credentials are set; 0 disables)", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		r.Interval, r.intervalSet = d, true
		return nil
	})
	fs.DurationVar(&r.Lookback, "reconcile-lookback", 24*time.Hour, "how far back reconcile passes list Kling's tasks")
	fs.StringVar(&r.Families, "reconcile-families", "", "comma-separated task families to list and query, e.g. text2video,avatar/image2video, plus `tasks` and `solutions` for every family of the newer APIs (default: every family with a query; see docs/reconcile.md)")
	fs.StringVar(&r.WebhookID, "reconcile-webhook", "default", "the registration that reconciled events belong to (jobs created through klingfan keep the one they were created on)")
	fs.DurationVar(&r.StaleAfter, "reconcile-stale-after", 30*time.Minute, "each pass also queries, one by one, jobs still submitted or processing whose state has not changed for this long (0 disables)")
}

// finish reads the credentials and applies the defaults that
// depend on them.
func (r *Reconcile) finish(lookup func(string) (string, bool)) {
	r.AccessKey, _ = lookup("KLING_ACCESS_KEY")
	r.SecretKey, _ = lookup("KLING_SECRET_KEY")
	r.APIKey, _ = lookup("KLING_API_KEY")
	if !r.intervalSet && r.Enabled() {
		r.Interval = 5 * time.Minute
	}
}

func (r *Reconcile) validate() []error {
	var errs []error
	if u, err := url.Parse(r.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--kling-api-url %q: want an absolute http(s) URL", r.APIURL))
	}
	if r.Interval < 0 {
		errs = append(errs, fmt.Errorf("--reconcile-interval %s: must not be negative", r.Interval))
	}
	if r.Lookback <= 0 {
		errs = append(errs, fmt.Errorf("--reconcile-lookback %s: must be positive", r.Lookback))
	}
	if r.StaleAfter < 0 {
		errs = append(errs, fmt.Errorf("--reconcile-stale-after %s: must not be negative (0 disables)", r.StaleAfter))
	}
	if (r.AccessKey == "") != (r.SecretKey == "") && r.APIKey == "" {
		errs = append(errs, errors.New("KLING_ACCESS_KEY and KLING_SECRET_KEY must be set together"))
	}
	if r.Interval > 0 && !r.Enabled() {
		errs = append(errs, errors.New("--reconcile-interval needs Kling credentials: KLING_ACCESS_KEY + KLING_SECRET_KEY, or KLING_API_KEY"))
	}
	if r.WebhookID == "" || strings.ContainsAny(r.WebhookID, ".*> ") {
		errs = append(errs, fmt.Errorf("--reconcile-webhook %q: want a webhook id", r.WebhookID))
	}
	return errs
}
