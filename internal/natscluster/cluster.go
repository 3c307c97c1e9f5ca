// Package natscluster runs a real NATS JetStream cluster in-process: nodes
// n1..nN on loopback, routed to each other, each with its own file store.
// The cluster tests in this package start one on free ports and put two
// klingfan replicas on it; cmd/natscluster starts one on fixed ports for
// `make cluster`.
//
// Nodes can be stopped and started again on the same ports and store
// directories, which is how the tests kill a node mid-load and restart the
// whole cluster.
package natscluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/klingfan/klingfan/internal/store"
)

// nodeReadyTimeout bounds the wait for a started node to accept clients.
const nodeReadyTimeout = 10 * time.Second

// Options configure Start.
type Options struct {
	// Dir holds the nodes' file stores, node nX under Dir/nX. Required.
	Dir string
	// Name is the cluster name; "klingfan" when empty.
	Name string
	// Nodes is the number of nodes; 3 when zero.
	Nodes int
	// Host is the address every node listens on; 127.0.0.1 when empty.
	Host string
	// ClientPorts and RoutePorts fix the ports of each node. When nil,
	// Start picks free ports, which restarts then keep.
	ClientPorts, RoutePorts []int
	// Logger receives the servers' logs (notices at debug level); nil
	// keeps them quiet.
	Logger *slog.Logger
}

// Cluster is a running set of NATS nodes. Its methods are safe for
// concurrent use.
type Cluster struct {
	opts Options

	mu    sync.Mutex
	nodes []*server.Server // guarded by mu; nil entries are stopped nodes
}

// Start starts every node and waits until each accepts clients. It does not
// wait for JetStream to elect its meta leader; WaitReady does.
func Start(opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("natscluster: a store directory is required")
	}
	if opts.Name == "" {
		opts.Name = "klingfan"
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	pick := opts.ClientPorts == nil && opts.RoutePorts == nil
	if !pick && (len(opts.ClientPorts) != opts.Nodes || len(opts.RoutePorts) != opts.Nodes) {
		return nil, fmt.Errorf("natscluster: want %d client and route ports, got %d and %d", opts.Nodes, len(opts.ClientPorts), len(opts.RoutePorts))
	}
	// Free ports are found by listening and closing, so another process
	// may take one before a node binds it: try again with fresh ones.
	attempts := 1
	if pick {
		attempts = 3
	}
	var err error
	for range attempts {
		if pick {
			ports, perr := freePorts(opts.Host, 2*opts.Nodes)
			if perr != nil {
				return nil, perr
			}
			opts.ClientPorts, opts.RoutePorts = ports[:opts.Nodes], ports[opts.Nodes:]
		}
		c := &Cluster{opts: opts, nodes: make([]*server.Server, opts.Nodes)}
		if err = c.StartAll(); err == nil {
			return c, nil
		}
		c.Close()
	}
	return nil, err
}

// StartAll starts every stopped node.
func (c *Cluster) StartAll() error {
	var errs []error
	for i := range c.opts.Nodes {
		errs = append(errs, c.StartNode(i))
	}
	return errors.Join(errs...)
}

// StartNode starts node i (0-based) on its ports and store directory, if it
// is not running, and waits until it accepts clients.
func (c *Cluster) StartNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[i] != nil {
		return nil
	}
	ns, err := server.NewServer(c.nodeOptions(i))
	if err != nil {
		return fmt.Errorf("natscluster: configure %s: %w", NodeName(i), err)
	}
	if c.opts.Logger != nil {
		ns.SetLoggerV2(store.ServerLogger(c.opts.Logger.With(slog.String("node", NodeName(i)))), false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(nodeReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("natscluster: %s not accepting clients on port %d after %s", NodeName(i), c.opts.ClientPorts[i], nodeReadyTimeout)
	}
	c.nodes[i] = ns
	return nil
}

func (c *Cluster) nodeOptions(i int) *server.Options {
	routes := make([]*url.URL, 0, c.opts.Nodes)
	for _, p := range c.opts.RoutePorts {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: net.JoinHostPort(c.opts.Host, strconv.Itoa(p))})
	}
	return &server.Options{
		ServerName: NodeName(i),
		Host:       c.opts.Host,
		Port:       c.opts.ClientPorts[i],
		Cluster: server.ClusterOpts{
			Name: c.opts.Name,
			Host: c.opts.Host,
			Port: c.opts.RoutePorts[i],
		},
		// Every node lists every route, itself included (a node ignores
		// a route to itself), so any subset can restart in any order.
		Routes:    routes,
		JetStream: true,
		StoreDir:  filepath.Join(c.opts.Dir, NodeName(i)),
		NoSigs:    true,
		NoLog:     c.opts.Logger == nil,
	}
}

// NodeName is the server name of node i: n1, n2, ...
func NodeName(i int) string { return "n" + strconv.Itoa(i+1) }

// StopNode shuts node i down, as a crash of that machine would look to its
// peers and clients (connections close), and waits until its store is
// released. Stopping a stopped node does nothing.
func (c *Cluster) StopNode(i int) {
	c.mu.Lock()
	ns := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// StopAll stops every node.
func (c *Cluster) StopAll() {
	var wg sync.WaitGroup
	for i := range c.opts.Nodes {
		wg.Go(func() { c.StopNode(i) })
	}
	wg.Wait()
}

// Close stops every node; the store directories stay.
func (c *Cluster) Close() { c.StopAll() }

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Nodes returns the number of nodes.
func (c *Cluster) Nodes() int { return c.opts.Nodes }

// ClientURLs returns every node's client URL, running or not.
func (c *Cluster) ClientURLs() []string {
	urls := make([]string, 0, c.opts.Nodes)
	for _, p := range c.opts.ClientPorts {
		urls = append(urls, "nats://"+net.JoinHostPort(c.opts.Host, strconv.Itoa(p)))
	}
	return urls
}

// URL returns the client URLs as one comma-separated seed list, the form
// klingfan's --nats-url takes.
func (c *Cluster) URL() string { return strings.Join(c.ClientURLs(), ",") }

// StreamLeader returns the index of the node that leads stream in the
// global account, or -1 when no running node does.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ns := range c.nodes {
		if ns != nil && ns.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitReady waits until JetStream has a meta leader and every running node
// is current with it, or ctx ends.
func (c *Cluster) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natscluster: JetStream has no meta leader: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (c *Cluster) ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	leader, running := false, 0
	for _, ns := range c.nodes {
		if ns == nil {
			continue
		}
		running++
		if !ns.JetStreamIsCurrent() {
			return false
		}
		leader = leader || ns.JetStreamIsLeader()
	}
	return running > 0 && leader
}

// freePorts returns n distinct ports that were free on host a moment ago.
func freePorts(host string, n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("natscluster: find a free port: %w", err)
		}
		// Held open until all are found, so the n ports are distinct.
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
