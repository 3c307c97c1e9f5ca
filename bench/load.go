package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/klingfan/klingfan/internal/verify"
)

// newHTTPClient returns a keep-alive HTTP/1.1 client holding up to conns
// connections to one host, like a webhook sender with a connection pool.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// post sends one signed delivery and reports whether it was answered 200.
func post(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(benchSecret), body))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// LoadResult is one closed-loop load run against an ingest endpoint.
type LoadResult struct {
	Concurrency int         `json:"concurrency"`
	Requests    int         `json:"requests"`
	Errors      int         `json:"errors"`
	Seconds     float64     `json:"seconds"`
	PerSecond   float64     `json:"per_second"`
	Latency     Percentiles `json:"latency"`
	// Cores is the CPU the whole harness process (server, load generator
	// and subscribers) used on average during the run.
	Cores float64 `json:"cores"`
	// OtherCores is what other processes on the machine used meanwhile.
	OtherCores float64 `json:"other_cores"`
	FirstErr   string  `json:"first_error,omitempty"`
	// Subscribers, when non-zero, is how many live subscribers drained the
	// events; DrainSeconds is how long after the last answer they took to
	// receive every accepted event, and Missing how many they never got.
	Subscribers  int     `json:"subscribers,omitempty"`
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
	Missing      int64   `json:"missing,omitempty"`
	// Resumes counts subscriber streams that ended with an error and were
	// resumed with after_sequence; StreamError is the first such error.
	Resumes     int64  `json:"resumes,omitempty"`
	StreamError string `json:"stream_error,omitempty"`

	// accepted counts every 200, warm-up included.
	accepted int64
}

// runLoad keeps conc POSTs of distinct signed deliveries in flight against
// url for warmup+dur and measures those started after the warm-up.
// Latency is from just before the request is signed (about 3 µs) and sent
// until its answer has been read; building the body is left out. tag
// keeps bodies (and so delivery ids) distinct across runs.
func runLoad(ctx context.Context, url string, conc int, warmup, dur time.Duration, tag string) LoadResult {
	client := newHTTPClient(conc)
	defer client.CloseIdleConnections()
	var accepted atomic.Int64
	r := closedLoop(ctx, conc, warmup, dur, func(w int) loopWorker {
		body := make([]byte, 0, 1024)
		prompt := make([]byte, 0, 64)
		return loopWorker{
			prepare: func(i int) error {
				// The job cycles through hotJobs ids (for filtered
				// subscribers); the prompt makes each body, and so its
				// delivery id, unique.
				prompt = append(prompt[:0], "klingbench load "...)
				prompt = append(prompt, tag...)
				prompt = append(prompt, ' ')
				prompt = strconv.AppendInt(prompt, int64(w), 10)
				prompt = append(prompt, ' ')
				prompt = strconv.AppendInt(prompt, int64(i), 10)
				body = appendBody(body[:0], hotJob(w+i), prompt)
				return nil
			},
			call: func() error {
				err := post(ctx, client, url, body)
				if err == nil {
					accepted.Add(1)
				}
				return err
			},
		}
	})
	r.accepted = accepted.Load()
	return r
}
