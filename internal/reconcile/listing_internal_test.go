package reconcile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/klingsim"
)

// simWith serves klingsim, with intercept answering first the requests it
// claims.
func simWith(t *testing.T, intercept func(w http.ResponseWriter, r *http.Request) bool) (*klingsim.Sim, *klingapi.Client) {
	t.Helper()
	sim, err := klingsim.New(klingsim.Config{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	h := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			h.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := klingapi.New(klingapi.Config{BaseURL: srv.URL, Credentials: klingapi.Credentials{APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

// families are the families named, in order.
func families(names ...string) []klingfamily.Family {
	out := make([]klingfamily.Family, len(names))
	for i, n := range names {
		out[i] = klingfamily.MustByName(n)
	}
	return out
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// TestOddListingDoesNotStopThePass: one family answering a shape the
// pages do not document fails its own listing, named with the field, and
// the other listings still run.
func TestOddListingDoesNotStopThePass(t *testing.T) {
	sim, c := simWith(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/videos/effects" && r.Method == http.MethodGet {
			answer(w, 200, `{"code":0,"message":"","request_id":"r","data":{"list":[]}}`)
			return true
		}
		return false
	})
	fams := families("videos/effects", "videos/avatar/image2video", "text-to-video/kling-2.6")
	for _, f := range fams {
		sim.MustCreate(f, "")
	}
	sim.Step()
	r := New(Config{API: c, Append: &countingAppender{}, History: nothingLogged{}, Families: fams, WebhookID: "w", Lookback: time.Hour})
	rep, err := r.RunOnce(context.Background(), 0, true)
	if err == nil || !strings.Contains(err.Error(), "videos/effects") || !strings.Contains(err.Error(), "data") {
		t.Fatalf("pass error = %v, want one naming videos/effects and its data field", err)
	}
	got := map[string]listed{}
	for _, l := range rep.Listings {
		got[l.Name] = listed{l.Tasks, l.Error}
	}
	if got["videos/effects"].err == "" || got["videos/avatar/image2video"] != (listed{1, ""}) || got["tasks"] != (listed{1, ""}) {
		t.Errorf("listings = %+v; want effects failed, the others listed their task", rep.Listings)
	}
	if rep.APIErrors["shape"] != 1 {
		t.Errorf("api errors = %v, want one shape error", rep.APIErrors)
	}
}

type listed struct {
	tasks int
	err   string
}

// TestRetriesFollowTheCodeTable: 5000 is retried and the pass succeeds;
// 1304 (IP allow-list, HTTP 429) is not retried and stops every listing.
func TestRetriesFollowTheCodeTable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     int
		status   int
		requests int64 // to the failing family
		ok       bool
	}{
		{"server error is retried", 5000, 500, 2, true},
		{"IP allow-list is not a rate limit", 1304, 429, 1, false},
		{"account in arrears is not retried", 1101, 429, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int64
			_, c := simWith(t, func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/v1/videos/effects" && hits.Add(1) == 1 {
					answer(w, tc.status, `{"code":`+itoa(tc.code)+`,"message":"no","request_id":"r"}`)
					return true
				}
				return false
			})
			fams := families("videos/effects")
			r := New(Config{API: c, Append: &countingAppender{}, History: nothingLogged{}, Families: fams, WebhookID: "w",
				Lookback: time.Hour, Backoff: time.Millisecond})
			rep, err := r.RunOnce(context.Background(), 0, true)
			if (err == nil) != tc.ok || hits.Load() != tc.requests || rep.APIErrors[itoa(tc.code)] != 1 {
				t.Errorf("err %v, %d requests, api errors %v; want ok=%v after %d requests", err, hits.Load(), rep.APIErrors, tc.ok, tc.requests)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
