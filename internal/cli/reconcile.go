package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/klingfan/klingfan/internal/reconcile/report"
)

// defaultHTTPURL is a local gateway's HTTP side.
const defaultHTTPURL = "http://localhost:8080"

func (c *client) reconcileCommand() *cobra.Command {
	var (
		since   time.Duration
		dryRun  bool
		httpURL string
	)
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Ask Kling's task API now for outcomes klingfan never received, and log them",
		Long: `Run one reconcile pass on the gateway now: it lists the Kling tasks updated
within --since, compares each with the log, and appends every state the log
is missing (as events with source format SOURCE_FORMAT_TASK_QUERY). With
--dry-run it only reports what is missing. Needs the admin token, and a
gateway started with Kling credentials (KLING_ACCESS_KEY + KLING_SECRET_KEY,
or KLING_API_KEY). It talks to the gateway's HTTP side (--http-url), where
the admin endpoint POST /admin/reconcile lives.`,
		Example: `  klingctl reconcile --since 6h --dry-run
  klingctl reconcile --http-url http://gateway:8080`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(strings.TrimRight(httpURL, "/") + report.AdminPath)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--http-url %q: want the gateway's http(s) base URL", httpURL)
			}
			q := url.Values{"dry_run": {strconv.FormatBool(dryRun)}}
			if since > 0 {
				q.Set("since", since.String())
			}
			u.RawQuery = q.Encode()
			return c.runReconcile(cmd, u)
		},
	}
	def := c.env.getenv("KLINGFAN_HTTP_URL")
	if def == "" {
		def = defaultHTTPURL
	}
	cmd.Flags().DurationVar(&since, "since", 0, "how far back to list Kling's tasks (default: the server's --reconcile-lookback)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what is missing without appending it")
	cmd.Flags().StringVar(&httpURL, "http-url", def, "the gateway's HTTP base URL ($KLINGFAN_HTTP_URL)")
	return cmd
}

func (c *client) runReconcile(cmd *cobra.Command, u *url.URL) error {
	tok, err := c.resolveToken()
	if err != nil {
		return err
	}
	// A pass lists every family with backoff on rate limits: allow it
	// longer than a unary call.
	hc, err := c.httpClient(max(c.timeout, 10*time.Minute))
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("User-Agent", "klingctl")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", u.Host, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	var rep report.Report
	if json.Unmarshal(body, &rep) != nil || rep.Started.IsZero() {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("the gateway answered %s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("the gateway answered %s", resp.Status)
	}
	printReport(c.env.Stdout, rep)
	if rep.Error != "" {
		return fmt.Errorf("the pass stopped early: %s", rep.Error)
	}
	return nil
}

func printReport(w io.Writer, rep report.Report) {
	verb := "recovered"
	if rep.DryRun {
		verb = "missing (dry run, nothing appended)"
	}
	fmt.Fprintf(w, "checked %d tasks updated since %s in %s\n", rep.TasksChecked,
		rep.Since.UTC().Format(time.RFC3339), rep.Finished.Sub(rep.Started).Round(time.Millisecond))
	if n := rep.StaleQueries; len(n) > 0 {
		fmt.Fprintf(w, "stale jobs queried one by one: %d found, %d unknown to Kling, %d skipped\n", n["found"], n["not_found"], n["skipped"])
	}
	if len(rep.Listings) > 0 {
		fmt.Fprintln(w, "listed (tasks, family or shared listing):")
		for _, l := range rep.Listings {
			line := fmt.Sprintf("  %6d  %s", l.Tasks, l.Name)
			if len(l.Families) > 1 || (len(l.Families) == 1 && l.Families[0] != l.Name) {
				line += " (" + strings.Join(l.Families, ", ") + ")"
			}
			if l.Error != "" {
				line += "  FAILED: " + l.Error
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(rep.Unqueryable) > 0 {
		fmt.Fprintf(w, "not reconcilable (Kling documents no query): %s\n", strings.Join(rep.Unqueryable, ", "))
	}
	fmt.Fprintf(w, "%s: %d\n", verb, len(rep.Recovered))
	for _, r := range rep.Recovered {
		note := ""
		if r.Superseded {
			note = " (a callback logged it first)"
		} else if r.Sequence != 0 {
			note = fmt.Sprintf(" at sequence %d", r.Sequence)
		}
		fmt.Fprintf(w, "  %-24s %-12s %s%s\n", r.JobID, r.Status, r.Family, note)
	}
	for code, n := range rep.APIErrors {
		fmt.Fprintf(w, "Kling API errors %s: %d\n", code, n)
	}
}
