// Package cluster runs the processes of a chaos run: three NATS nodes, each
// in its own namespace of the lab, and two klingfan replicas in the hub
// namespace, connected to the nodes over the bridge. It starts, kills,
// pauses and restarts them, and says when the whole is healthy again.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/chaos/internal/checker"
	"github.com/klingfan/klingfan/chaos/internal/netlab"
)

// Config configures a cluster.
type Config struct {
	// Dir holds the nodes' stores and configuration files, the replicas'
	// data directories and every process's log.
	Dir string
	Lab *netlab.Lab
	// Self is the klingchaos binary, which runs a node with `node -c`.
	Self string
	// Klingfan is the klingfan binary.
	Klingfan string
	// SyncAlways sets sync_interval: always on every node.
	SyncAlways bool
	// Secret is KLINGAI_WEBHOOK_SECRET on both replicas.
	Secret string
}

// Replica ports, on the hub namespace's own loopback.
const (
	httpPortBase = 7481
	grpcPortBase = 7491
)

// Cluster is the running set of processes.
type Cluster struct {
	cfg      Config
	Nodes    []*Proc
	Replicas []*Proc
	natsURL  string
	http     *http.Client
}

// Proc is one process of the run, restartable with the same arguments.
type Proc struct {
	Name string
	ns   netlab.Namespace
	bin  string
	args []string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd     // guarded by mu; nil when not running
	done   chan struct{} // guarded by mu; closed when cmd exited
	paused bool          // guarded by mu
}

// Start writes the nodes' configuration and starts the nodes and then the
// replicas, and waits until the stream exists and both replicas are ready.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	c := &Cluster{cfg: cfg, http: &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{DialContext: cfg.Lab.Hub.DialContext},
	}}
	var urls, addrs []string
	for _, n := range cfg.Lab.Nodes {
		addrs = append(addrs, n.Addr.String())
		urls = append(urls, "nats://"+n.Addr.String()+":4222")
	}
	c.natsURL = strings.Join(urls, ",")
	for i, n := range cfg.Lab.Nodes {
		name := "n" + strconv.Itoa(i+1)
		dir := filepath.Join(cfg.Dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "nats-server.conf")
		if err := writeFile(conf, nodeConfig(name, n.Addr.String(), filepath.Join(dir, "store"), addrs, cfg.SyncAlways)); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, &Proc{Name: name, ns: n, bin: cfg.Self, args: []string{"node", "-c", conf}, log: filepath.Join(dir, "nats-server.log")})
	}
	for j, name := range []string{"a", "b"} {
		dir := filepath.Join(cfg.Dir, "replica-"+name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		httpAddr := "127.0.0.1:" + strconv.Itoa(httpPortBase+j)
		c.Replicas = append(c.Replicas, &Proc{
			Name: "replica " + name,
			ns:   cfg.Lab.Hub,
			bin:  cfg.Klingfan,
			args: []string{"serve", "--nats-url", c.natsURL, "--data-dir", dir,
				"--http-addr", httpAddr, "--grpc-addr", "127.0.0.1:" + strconv.Itoa(grpcPortBase+j),
				"--public-url", "http://" + httpAddr},
			env: []string{"KLINGAI_WEBHOOK_SECRET=" + cfg.Secret},
			log: filepath.Join(dir, "klingfan.log"),
		})
	}
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	// A replica gives up when JetStream has no meta leader for a while,
	// so the replicas start once the nodes elected one.
	if err := c.waitMetaLeader(ctx, time.Minute); err != nil {
		c.Close()
		return nil, err
	}
	// One after the other, as docs/cluster.md starts them: the first
	// creates the streams and buckets.
	for j, r := range c.Replicas {
		if err := r.Start(); err != nil {
			c.Close()
			return nil, err
		}
		if err := c.waitReady(ctx, j, time.Minute); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitHealthy(ctx, 2*time.Minute); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ReplicaURL is replica j's HTTP base URL, reachable from the hub namespace.
func (c *Cluster) ReplicaURL(j int) string {
	return "http://127.0.0.1:" + strconv.Itoa(httpPortBase+j)
}

// Connect opens a NATS connection to the cluster from the hub namespace.
func (c *Cluster) Connect() (*nats.Conn, error) {
	return nats.Connect(c.natsURL, nats.SetCustomDialer(c.cfg.Lab.Hub), nats.Name("klingchaos"),
		nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
}

// Health is what WaitHealthy waits for.
type Health struct {
	Leader        string // the stream's leader, "" when it has none
	CurrentPeers  int    // followers current with the leader
	ReadyReplicas int
}

// Healthy reports whether the stream has a leader with every follower
// current and both replicas answer /readyz with 200.
func (h Health) Healthy(nodes int) bool {
	return h.Leader != "" && h.CurrentPeers == nodes-1 && h.ReadyReplicas == 2
}

// Health reads the stream's cluster state and the replicas' readiness.
func (c *Cluster) Health(ctx context.Context, js jetstream.JetStream) Health {
	var h Health
	if js != nil {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := js.Stream(ctx, checker.StreamName)
		if err == nil && st.CachedInfo().Cluster != nil {
			cl := st.CachedInfo().Cluster
			h.Leader = cl.Leader
			for _, p := range cl.Replicas {
				if p.Current && !p.Offline {
					h.CurrentPeers++
				}
			}
		}
		cancel()
	}
	for j := range c.Replicas {
		if c.ready(ctx, j) {
			h.ReadyReplicas++
		}
	}
	return h
}

// WaitHealthy waits up to d until Health is healthy.
func (c *Cluster) WaitHealthy(ctx context.Context, d time.Duration) error {
	nc, err := c.Connect()
	if err != nil {
		// nats.Connect fails at once when no seed answers yet; Health
		// then reports no leader until a later try connects.
		nc = nil
	}
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var h Health
	for {
		if nc == nil {
			nc, _ = c.Connect()
		}
		var js jetstream.JetStream
		if nc != nil {
			js, _ = jetstream.New(nc)
		}
		if h = c.Health(ctx, js); h.Healthy(len(c.Nodes)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy after %s: stream leader %q, %d of %d followers current, %d of 2 replicas ready",
				d, h.Leader, h.CurrentPeers, len(c.Nodes)-1, h.ReadyReplicas)
		case <-tick.C:
		}
	}
}

// waitReady waits until replica j answers /readyz with 200, failing early
// if it exits.
func (c *Cluster) waitReady(ctx context.Context, j int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	r := c.Replicas[j]
	for {
		if c.ready(ctx, j) {
			return nil
		}
		if !r.Running() {
			return fmt.Errorf("%s exited during start; see %s", r.Name, r.log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s; see %s", r.Name, d, r.log)
		case <-tick.C:
		}
	}
}

func (c *Cluster) ready(ctx context.Context, j int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ReplicaURL(j)+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitMetaLeader waits until JetStream answers an account info request,
// which needs a meta leader.
func (c *Cluster) waitMetaLeader(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = c.metaLeader(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("JetStream has no meta leader after %s: %w", d, last)
		case <-tick.C:
		}
	}
}

func (c *Cluster) metaLeader(ctx context.Context) error {
	nc, err := c.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Leader returns the index of the node leading the event stream.
func (c *Cluster) Leader(ctx context.Context, js jetstream.JetStream) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, checker.StreamName)
	if err != nil {
		return -1, err
	}
	if cl := st.CachedInfo().Cluster; cl != nil {
		for i, n := range c.Nodes {
			if n.Name == cl.Leader {
				return i, nil
			}
		}
	}
	return -1, errors.New("the stream has no leader")
}

// Close stops every process: replicas first (they drain), then the nodes.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, p := range c.Replicas {
		wg.Go(p.Stop)
	}
	wg.Wait()
	for _, p := range c.Nodes {
		wg.Go(p.Stop)
	}
	wg.Wait()
}

// Start starts the process if it is not running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy
	fmt.Fprintf(log, "--- klingchaos: start %s at %s\n", p.Name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := p.ns.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a Ctrl-C reaches the harness only and
	// the harness decides the order of shutdown; and killed with the
	// harness, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done, p.paused = cmd, done, false
	return nil
}

// Running reports whether the process was started and has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the running process; it does nothing when stopped.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return p.cmd.Process.Signal(sig)
}

// Kill SIGKILLs the process and waits until it is gone.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop ends the process gracefully (SIGTERM, resuming it if paused), or
// kills it after ten seconds.
func (p *Proc) Stop() {
	p.mu.Lock()
	cmd, done, paused := p.cmd, p.done, p.paused
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
