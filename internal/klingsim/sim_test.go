package klingsim_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingsim"
)

func newSim(t *testing.T) (*klingsim.Sim, string) {
	t.Helper()
	sim, err := klingsim.New(klingsim.Config{AccessKey: "ak", SecretKey: "sk", APIKey: "static-key", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func TestQueryAPI(t *testing.T) {
	sim, url := newSim(t)
	t2v := klingapi.Family{Group: "videos", Name: "text2video"}
	legacy := sim.Create(t2v, false, "ext-1")
	v2 := sim.Create(klingapi.Family{Group: "images", Name: "omni-image"}, true, "ext-2")
	sim.Step()
	sim.Step()

	for _, tc := range []struct {
		name  string
		creds klingapi.Credentials
	}{
		{"jwt", klingapi.Credentials{AccessKey: "ak", SecretKey: "sk"}},
		{"static key", klingapi.Credentials{APIKey: "static-key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := klingapi.New(klingapi.Config{BaseURL: url, Credentials: tc.creds})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			got, err := c.GetTask(ctx, t2v, legacy, false)
			if err != nil || got.ID != legacy || !got.Terminal() || got.V2 {
				t.Fatalf("GetTask = %+v, %v", got, err)
			}
			byExt, err := c.GetTask(ctx, t2v, "ext-1", true)
			if err != nil || byExt.ID != legacy {
				t.Fatalf("GetTask by external id = %+v, %v", byExt, err)
			}
			page, err := c.ListPage(ctx, t2v, 1, 10)
			if err != nil || len(page) != 1 || page[0].ID != legacy {
				t.Fatalf("ListPage = %+v, %v", page, err)
			}
			tp, err := c.ListTasks(ctx, klingapi.TaskQuery{Limit: 10})
			if err != nil || len(tp.Tasks) != 1 || tp.Tasks[0].ID != v2 || !tp.Tasks[0].V2 {
				t.Fatalf("ListTasks = %+v, %v", tp, err)
			}
			ts, err := c.GetTasks(ctx, []string{v2}, false)
			if err != nil || len(ts) != 1 || ts[0].Status == "" {
				t.Fatalf("GetTasks = %+v, %v", ts, err)
			}
		})
	}
}

func TestQueryAPIErrors(t *testing.T) {
	sim, url := newSim(t)
	t2v := klingapi.Family{Group: "videos", Name: "text2video"}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		creds klingapi.Credentials
		now   time.Time
		limit int
		want  error
		label string
	}{
		{"wrong secret", klingapi.Credentials{AccessKey: "ak", SecretKey: "wrong"}, time.Now(), 0, klingapi.ErrAuth, "1000"},
		{"expired token", klingapi.Credentials{AccessKey: "ak", SecretKey: "sk"}, time.Now().Add(-time.Hour), 0, klingapi.ErrTokenExpired, "1004"},
		{"not yet valid", klingapi.Credentials{AccessKey: "ak", SecretKey: "sk"}, time.Now().Add(time.Hour), 0, klingapi.ErrTokenNotYetValid, "1003"},
		{"wrong api key", klingapi.Credentials{APIKey: "nope"}, time.Now(), 0, klingapi.ErrAuth, "1000"},
		{"rate limited", klingapi.Credentials{APIKey: "static-key"}, time.Now(), 1, klingapi.ErrRateLimited, "1302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim.RateLimit(tc.limit)
			c, err := klingapi.New(klingapi.Config{BaseURL: url, Credentials: tc.creds, Now: func() time.Time { return tc.now }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListPage(ctx, t2v, 1, 10)
			if !errors.Is(err, tc.want) || klingapi.ErrorLabel(err) != tc.label {
				t.Fatalf("err = %v (label %s), want %v (label %s)", err, klingapi.ErrorLabel(err), tc.want, tc.label)
			}
		})
	}
	account := &klingapi.APIError{HTTPStatus: 429, Code: 1101, Message: "Account in arrears"}
	if errors.Is(account, klingapi.ErrRateLimited) || !errors.Is(account, klingapi.ErrAccount) {
		t.Errorf("code 1101 with HTTP 429 must be an account error, not a rate limit to back off from")
	}
	c, _ := klingapi.New(klingapi.Config{BaseURL: "http://127.0.0.1:1", Credentials: klingapi.Credentials{APIKey: "k"}})
	if _, err := c.ListPage(ctx, t2v, 1, 1); !errors.Is(err, klingapi.ErrUnavailable) || klingapi.ErrorLabel(err) != "unreachable" {
		t.Fatalf("unreachable API: err = %v", err)
	}
}
