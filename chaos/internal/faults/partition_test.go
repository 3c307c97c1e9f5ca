package faults_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/config"

	"github.com/klingfan/klingfan/chaos/internal/cluster"
	"github.com/klingfan/klingfan/chaos/internal/faults"
	"github.com/klingfan/klingfan/chaos/internal/load"
	"github.com/klingfan/klingfan/chaos/internal/netlab"
)

// TestMain lets the test binary be every process of the cluster it
// starts: `node -c FILE` runs a NATS node as `klingchaos node` does, and
// `serve FLAGS` a klingfan replica as `klingfan serve` does, so the test
// needs no binary built beforehand and runs the tree it is part of.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "node" || os.Args[1] == "serve") {
		if err := runChild(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(role string, args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if role == "node" {
		fs := flag.NewFlagSet("node", flag.ContinueOnError)
		conf := fs.String("c", "", "nats-server configuration file")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return cluster.RunNode(ctx, *conf)
	}
	cfg, err := config.Parse(args, os.LookupEnv, os.Stdout)
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg, app.Options{Stdout: os.Stdout})
}

const secret = "partition-test-secret" //nolint:gosec // a throwaway secret of a throwaway cluster

// A replica whose NATS node is cut off from the other two keeps a healthy
// connection to it, yet the node can no longer serve JetStream: the
// replica must move to another node by itself and take deliveries again
// while the partition lasts. Without the move it answers 503 until the
// partition heals.
func TestPartitionedReplicaMoves(t *testing.T) {
	if err := netlab.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("starts a cluster of three nodes and two replicas")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	lab, err := netlab.Create(ctx, "kfchaosmove-", 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Destroy(context.Background()) })
	dir := t.TempDir()
	c, err := cluster.Start(ctx, cluster.Config{Dir: dir, Lab: lab, Self: self, Klingfan: self, SyncAlways: true, Secret: secret})
	if err != nil {
		logTail(t, dir)
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nc, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	f, heal, err := faults.Apply(ctx, faults.Env{Lab: lab, Cluster: c, JS: js}, faults.Fault{Kind: faults.PartitionConnected, Replica: 0})
	if heal != nil {
		t.Cleanup(func() { _ = heal(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	cut := f.Nodes[0]
	cutAt := time.Now()

	first, err := firstAcknowledged(ctx, lab, c.ReplicaURL(0), 45*time.Second)
	if err != nil {
		logTail(t, dir)
		t.Fatalf("replica a, on %s cut off from the others: %v", f.Label(), err)
	}
	node, err := c.ConnectedNode(0)
	switch {
	case err != nil:
		t.Errorf("after its 2xx: %v", err)
	case node == cut:
		t.Errorf("replica a answered 2xx still connected to n%d, which is cut off", cut+1)
	}
	t.Logf("%s: replica a answered its first 2xx %.1fs after the cut, from n%d", f.Label(), first.Sub(cutAt).Seconds(), node+1)

	// The move is logged, naming the node left, and counted.
	log, err := os.ReadFile(filepath.Join(dir, "replica-a", "klingfan.log"))
	if err != nil {
		t.Fatal(err)
	}
	moved := regexp.MustCompile(`msg="NATS server is not serving JetStream; reconnecting to another" server=(n\d)`).FindAllStringSubmatch(string(log), -1)
	if len(moved) == 0 || moved[0][1] != fmt.Sprintf("n%d", cut+1) {
		t.Errorf("replica a's log does not say it left n%d: %q", cut+1, moved)
	}
	if n := forcedReconnects(ctx, t, lab, c.ReplicaURL(0)); n != float64(len(moved)) {
		t.Errorf("klingfan_nats_forced_reconnects_total = %v, the log has %d moves", n, len(moved))
	}
}

// forcedReconnects sums klingfan_nats_forced_reconnects_total over its
// reasons, from the replica's /metrics.
func forcedReconnects(ctx context.Context, t *testing.T, lab *netlab.Lab, url string) float64 {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: lab.Hub.DialContext}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	series := 0
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, "klingfan_nats_forced_reconnects_total{") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
		series++
	}
	if series == 0 {
		t.Fatal("no klingfan_nats_forced_reconnects_total series in /metrics")
	}
	return sum
}

// firstAcknowledged posts a new signed delivery to url every 100 ms, each
// in its own goroutine (an append stuck on a cut-off node holds its
// request for seconds), until one is answered 2xx, and returns when that
// answer came. It gives up after d.
func firstAcknowledged(ctx context.Context, lab *netlab.Lab, url string, d time.Duration) (time.Time, error) {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the attempts still waiting end at once
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: lab.Hub.DialContext}}
	acked := make(chan time.Time, 1)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	statuses := map[int]int{}
	var mu sync.Mutex
	for i := 0; ; i++ {
		wg.Go(func() {
			body := fmt.Appendf(nil, `{"event":"video.completed","timestamp":%q,"data":{"job_id":"move-%d","status":"completed","video_url":"https://example.com/move/%d.mp4","duration":5}}`,
				time.Now().UTC().Format(time.RFC3339Nano), i, i)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/webhooks/klingai", bytes.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Kling-Signature", load.Sign(secret, body))
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
			if resp.StatusCode/100 == 2 {
				select {
				case acked <- time.Now():
				default:
				}
			}
		})
		select {
		case at := <-acked:
			return at, nil
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			return time.Time{}, fmt.Errorf("no 2xx within %s (answers by status: %v)", d, statuses)
		case <-tick.C:
		}
	}
}

// logTail logs the end of each replica's log, which says what it did.
func logTail(t *testing.T, dir string) {
	t.Helper()
	for _, r := range []string{"a", "b"} {
		b, err := os.ReadFile(filepath.Join(dir, "replica-"+r, "klingfan.log"))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				t.Log(err)
			}
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("replica %s, last lines of its log:\n%s", r, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}
