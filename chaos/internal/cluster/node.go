package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// RunNode runs one NATS server from a nats-server configuration file until
// ctx ends. It is what `klingchaos node -c FILE` runs in a node's namespace:
// no nats-server binary is installed (Debian's is far older than the
// library klingfan embeds), so the harness runs the same library version
// klingfan is built with, configured by the same file a production
// nats-server would read.
func RunNode(ctx context.Context, configFile string) error {
	opts, err := server.ProcessConfigFile(configFile)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	// The harness signals the process itself (SIGSTOP, SIGKILL); ctx
	// carries SIGTERM and SIGINT.
	opts.NoSigs = true
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	ns.ConfigureLogger()
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("node %s: not accepting clients after 30s", opts.ServerName)
	}
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// nodeConfig is node i's configuration file: JetStream on file storage
// and routes to every node (itself included; a node ignores its own).
// syncAlways makes the node fsync every write before it acknowledges it,
// which is what klingfan recommends for production; without it the node
// syncs on NATS's default interval.
func nodeConfig(name, addr, storeDir string, routes []string, syncAlways bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: %q\nlogtime: true\n", name, addr+":4222")
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", storeDir)
	if syncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "cluster {\n  name: klingfan-chaos\n  listen: %q\n  routes: [\n", addr+":6222")
	for _, r := range routes {
		fmt.Fprintf(&b, "    %q\n", "nats-route://"+r+":6222")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// writeFile writes data to path, readable by the run's processes only.
func writeFile(path, data string) error {
	return os.WriteFile(path, []byte(data), 0o600)
}
