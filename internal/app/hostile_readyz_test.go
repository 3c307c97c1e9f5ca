package app_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// getReadyz returns /readyz's status and body, with token when not empty.
func getReadyz(t *testing.T, srv *apptest.Server, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL+"/readyz", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// expectReadyzTerse: a reconcile pass fails against an address that
// stands for Kling's (in production its error text can carry Kling's
// message, hosts and proxy addresses). Anonymous /readyz says the pass
// failed in a word and nothing of why; a caller with a token gets the
// error.
func expectReadyzTerse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := ln.Addr().String()
	ln.Close() // nothing listens there: every call fails naming the address
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) {
		c.Reconcile.APIKey = "test-api-key"
		c.Reconcile.APIURL = "http://" + upstream
		c.Reconcile.Interval = time.Hour
	}))
	// The pass fails; its report and /readyz's detail say why.
	_, _ = gatewayv1.NewAdminServiceClient(f.conn).Reconcile(t.Context(), &gatewayv1.ReconcileRequest{DryRun: true})
	status, body := getReadyz(t, f.srv, "")
	if status != http.StatusOK || !strings.Contains(body, `"reconcile":"failed"`) {
		t.Errorf("anonymous /readyz: %d %s, want 200 with reconcile \"failed\"", status, body)
	}
	if strings.Contains(body, upstream) || strings.Contains(body, "127.0.0.1") {
		t.Errorf("anonymous /readyz tells the upstream's address: %s", body)
	}
	if _, body := getReadyz(t, f.srv, subscribeTokenOf(t, f)); !strings.Contains(body, upstream) {
		t.Errorf("/readyz with a token lacks the pass's error: %s", body)
	}
}

// subscribeTokenOf returns a token of f's server; the admin token will do.
func subscribeTokenOf(*testing.T, *fanout) string { return apptest.AdminToken }
