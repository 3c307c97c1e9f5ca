package app_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/store"
)

// withEveryAsset turns on what creates the assets only some replicas
// keep: the reconciler (its bucket), pointed at a loopback port nothing
// listens on and never run.
func withEveryAsset(t *testing.T) func(*config.Config) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := ln.Addr().String()
	_ = ln.Close()
	return func(c *config.Config) {
		c.Reconcile.APIKey = "assets-test-key"
		c.Reconcile.APIURL = "http://" + upstream
		c.Reconcile.Interval = 0
	}
}

// embeddedAddr matches the log line of an embedded server opened with
// --nats-listen.
var embeddedAddr = regexp.MustCompile(`embedded NATS server open to clients.* addr=(nats://[0-9.:]+)`)

// startEmbedded starts a server on dir with every asset, its embedded NATS
// server open on a free loopback port, and returns it with a JetStream
// connection to that server.
func startEmbedded(t *testing.T, dir string, everyAsset func(*config.Config)) (*apptest.Server, jetstream.JetStream, *apptest.SyncBuffer) {
	t.Helper()
	logs := &apptest.SyncBuffer{}
	srv := apptest.Start(t, dir, apptest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))), apptest.WithConfig(func(c *config.Config) {
		everyAsset(c)
		c.NATSListen = "127.0.0.1:0"
	}))
	m := embeddedAddr.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("the server did not log its NATS address:\n%s", logs.String())
	}
	token, err := os.ReadFile(filepath.Join(dir, store.NATSTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return srv, connectJetStream(t, m[1], nats.Token(strings.TrimSpace(string(token)))), logs
}

func connectJetStream(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// startErr runs a server that is expected not to start and returns why.
func startErr(t *testing.T, configure func(*config.Config)) error {
	t.Helper()
	cfg, err := config.Parse([]string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminToken = apptest.AdminToken
	configure(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = app.Run(ctx, cfg, app.Options{Logger: slog.New(slog.DiscardHandler), Stdout: io.Discard})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the server started (%v), want it to refuse", err)
	}
	return err
}

func streamNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var names []string
	lister := js.StreamNames(context.Background())
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo().Config
}

// A server started on a fresh data directory keeps exactly the streams
// and buckets of store.Assets on JetStream: none missing, none the table
// does not know (and so backups and docs would miss).
func TestFreshStartCreatesExactlyTheAssetTable(t *testing.T) {
	_, js, _ := startEmbedded(t, t.TempDir(), withEveryAsset(t))
	var want []string
	for _, a := range store.Assets {
		want = append(want, a.Stream)
	}
	slices.Sort(want)
	if got := streamNames(t, js); !slices.Equal(got, want) {
		t.Errorf("streams on JetStream after a fresh start:\n got %v\nwant %v (store.Assets)", got, want)
	}
}

// assetDrift is a change an operator (or another replica's flags) could
// make to one asset, and how start-up names it.
type assetDrift struct {
	stream string
	alter  func(*jetstream.StreamConfig)
	field  func(jetstream.StreamConfig) any
	// says is the difference start-up reports.
	says string
}

func shorterAge(c *jetstream.StreamConfig) { c.MaxAge = 24 * time.Hour }
func maxAge(c jetstream.StreamConfig) any  { return c.MaxAge }
func history(c jetstream.StreamConfig) any { return c.MaxMsgsPerSubject }
func historyOf(n int64) func(*jetstream.StreamConfig) {
	return func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = n }
}

// assetDrifts has a case for every row of store.Assets.
var assetDrifts = map[string]assetDrift{
	"registrations": {"KV_" + store.BucketName, historyOf(5), history,
		"key-value bucket klingfan-webhooks: history is 5 on the server, configured 1"},
	"events": {store.StreamName, shorterAge, maxAge,
		"stream KLINGFAN_EVENTS: max age (--retention) is 24h0m0s on the server, configured 168h0m0s"},
	"groups": {store.GroupsStreamName, shorterAge, maxAge,
		"stream KLINGFAN_GROUPS: max age (--retention) is 24h0m0s on the server, configured 168h0m0s"},
	"jobs": {"KV_" + store.JobsBucketName, shorterAge, maxAge,
		"key-value bucket klingfan-jobs: TTL (--retention) is 24h0m0s on the server, configured 168h0m0s"},
	"id index": {store.IDIndexStreamName, shorterAge, maxAge,
		"stream KLINGFAN_EVENT_IDS: max age (--retention) is 24h0m0s on the server, configured 168h0m0s"},
	"late outcomes": {store.LateOutcomesStreamName, shorterAge, maxAge,
		"stream KLINGFAN_LATE_OUTCOMES: max age (--retention) is 24h0m0s on the server, configured 168h0m0s"},
	"reconcile": {"KV_" + store.ReconcileBucketName, historyOf(3), history,
		"key-value bucket klingfan-reconcile: history is 3 on the server, configured 1"},
	"creates": {"KV_" + store.CreatesBucketName, shorterAge, maxAge,
		"key-value bucket klingfan-creates: TTL (--retention) is 24h0m0s on the server, configured 168h0m0s"},
	"group members": {"KV_" + store.GroupMembersBucket, func(c *jetstream.StreamConfig) { c.MaxAge = time.Minute }, maxAge,
		"key-value bucket klingfan-group-members: TTL is 1m0s on the server, configured 30s"},
}

func TestAssetDriftCoversEveryAsset(t *testing.T) {
	for _, a := range store.Assets {
		if !slices.ContainsFunc(slices.Collect(maps.Values(assetDrifts)), func(d assetDrift) bool { return d.stream == a.Stream }) {
			t.Errorf("no drift case for %s", a.Stream)
		}
	}
}

// alter changes one setting of a stream and returns its value before.
func alter(t *testing.T, js jetstream.JetStream, d assetDrift) any {
	t.Helper()
	cfg := streamConfig(t, js, d.stream)
	before := d.field(cfg)
	d.alter(&cfg)
	if _, err := js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatalf("alter %s: %v", d.stream, err)
	}
	return before
}

// Against an external NATS deployment a start over an asset whose
// settings differ from store.Assets fails, naming the asset and the
// setting, and changes nothing; with --nats-update-config it applies the
// configured value.
func TestAssetDriftExternal(t *testing.T) {
	ns := apptest.StartNATS(t, nil)
	everyAsset := withEveryAsset(t)
	external := func(update bool) func(*config.Config) {
		return func(c *config.Config) {
			everyAsset(c)
			c.NATSURL, c.Replicas, c.NATSUpdateConfig = ns.ClientURL(), 1, update
		}
	}
	quiet := apptest.WithLogger(slog.New(slog.DiscardHandler))
	apptest.Start(t, "", quiet, apptest.WithConfig(external(false))).Stop(t)
	js := connectJetStream(t, ns.ClientURL())
	for name, d := range assetDrifts {
		t.Run(name, func(t *testing.T) {
			before := alter(t, js, d)
			altered := d.field(streamConfig(t, js, d.stream))
			err := startErr(t, external(false))
			if !strings.Contains(err.Error(), d.says) || !strings.Contains(err.Error(), "--nats-update-config") {
				t.Errorf("start over the changed asset failed with\n%v\nwant it to name %q and --nats-update-config", err, d.says)
			}
			if got := d.field(streamConfig(t, js, d.stream)); got != altered {
				t.Errorf("the refused start changed the asset: %v, was %v", got, altered)
			}
			apptest.Start(t, "", quiet, apptest.WithConfig(external(true))).Stop(t)
			if got := d.field(streamConfig(t, js, d.stream)); got != before {
				t.Errorf("after a start with --nats-update-config the setting is %v, want the configured %v", got, before)
			}
		})
	}
}

// The embedded server belongs to the process: a start applies whatever
// differs from store.Assets, and logs each change.
func TestAssetDriftEmbedded(t *testing.T) {
	dir := t.TempDir()
	everyAsset := withEveryAsset(t)
	srv, js, _ := startEmbedded(t, dir, everyAsset)
	parent := t // owns each server and connection across the cases
	for name, d := range assetDrifts {
		t.Run(name, func(t *testing.T) {
			before := alter(t, js, d)
			memory := streamConfig(t, js, d.stream).Storage == jetstream.MemoryStorage
			srv.Stop(t)
			var logs *apptest.SyncBuffer
			srv, js, logs = startEmbedded(parent, dir, everyAsset)
			if got := d.field(streamConfig(t, js, d.stream)); got != before {
				t.Errorf("after a restart the setting is %v, want the configured %v", got, before)
			}
			// A memory bucket does not outlive the server: it is made anew.
			asset, _, _ := strings.Cut(d.says, ":")
			if logged := `msg="changed JetStream setting to match the configuration" asset="` + asset + `"`; !memory && !strings.Contains(logs.String(), logged) {
				t.Errorf("the change was not logged (%s):\n%s", logged, logs.String())
			}
		})
	}
}
