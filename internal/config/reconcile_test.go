package config_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/config"
)

func TestReconcileConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		interval time.Duration
		stale    time.Duration
		enabled  bool
		err      string
	}{
		{name: "no credentials: off", interval: 0, stale: 30 * time.Minute},
		{name: "stale queries off", args: []string{"--reconcile-stale-after", "0"}, env: map[string]string{"KLING_API_KEY": "k"}, interval: 5 * time.Minute, stale: 0, enabled: true},
		{name: "stale after an hour", args: []string{"--reconcile-stale-after", "1h"}, env: map[string]string{"KLING_API_KEY": "k"}, interval: 5 * time.Minute, stale: time.Hour, enabled: true},
		{name: "negative stale threshold", args: []string{"--reconcile-stale-after", "-1m"}, err: "--reconcile-stale-after"},
		{name: "jwt credentials: every 5m", env: map[string]string{"KLING_ACCESS_KEY": "ak", "KLING_SECRET_KEY": "sk"}, interval: 5 * time.Minute, stale: 30 * time.Minute, enabled: true},
		{name: "api key: every 5m", env: map[string]string{"KLING_API_KEY": "k"}, interval: 5 * time.Minute, stale: 30 * time.Minute, enabled: true},
		{name: "0 disables", args: []string{"--reconcile-interval", "0"}, env: map[string]string{"KLING_API_KEY": "k"}, interval: 0, stale: 30 * time.Minute, enabled: true},
		{name: "explicit interval", args: []string{"--reconcile-interval", "1m"}, env: map[string]string{"KLING_API_KEY": "k"}, interval: time.Minute, stale: 30 * time.Minute, enabled: true},
		{name: "half a key pair", env: map[string]string{"KLING_ACCESS_KEY": "ak"}, err: "KLING_ACCESS_KEY and KLING_SECRET_KEY"},
		{name: "interval without credentials", args: []string{"--reconcile-interval", "1m"}, err: "needs Kling credentials"},
		{name: "bad API URL", args: []string{"--kling-api-url", "ftp://x"}, err: "--kling-api-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			c, err := config.Parse(append([]string{"--data-dir", t.TempDir()}, tc.args...), lookup, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := c.Reconcile
			if r.Interval != tc.interval || r.StaleAfter != tc.stale || r.Enabled() != tc.enabled || r.Lookback != 24*time.Hour || r.WebhookID != "default" {
				t.Errorf("reconcile config = %+v", r)
			}
		})
	}
}
