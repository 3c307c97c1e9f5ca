// Command natscluster runs a local three-node NATS JetStream cluster for
// development and the `make cluster` demo: nodes n1..n3 on loopback, client
// ports 4222-4224, route ports 6222-6224, file stores under ./data/cluster.
// It runs until interrupted; starting it again on the same directory keeps
// the data.
//
// It is a development tool, not a way to run NATS in production: use the
// nats-server binary (or its container image) with a configuration file
// there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/klingfan/klingfan/internal/natscluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "natscluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("natscluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "./data/cluster", "directory for the nodes' file stores (node nX under DIR/nX)")
	host := fs.String("host", "127.0.0.1", "address every node listens on")
	clientPort := fs.Int("client-port", 4222, "client port of n1; n2 and n3 use the next ones")
	routePort := fs.Int("route-port", 6222, "cluster route port of n1; n2 and n3 use the next ones")
	nodes := fs.Int("nodes", 3, "number of nodes")
	verbose := fs.Bool("v", false, "log the servers' notices too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 {
		return fmt.Errorf("-nodes %d: want at least 1", *nodes)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	opts := natscluster.Options{Dir: *dir, Name: "klingfan-dev", Nodes: *nodes, Host: *host, Logger: log}
	for i := range *nodes {
		opts.ClientPorts = append(opts.ClientPorts, *clientPort+i)
		opts.RoutePorts = append(opts.RoutePorts, *routePort+i)
	}
	c, err := natscluster.Start(opts)
	if err != nil {
		return err
	}
	defer c.Close()
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitReady(readyCtx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "NATS cluster %q ready: %d nodes, store under %s\n  --nats-url %s\n", opts.Name, *nodes, *dir, c.URL())

	<-ctx.Done()
	fmt.Fprintln(stdout, "natscluster: stopping")
	return nil
}
