// Package netlab builds a private network for a chaos run: a hub network
// namespace holding a bridge, and one namespace per node joined to the
// bridge by a veth pair, on a subnet that exists only inside them. Nothing
// is created outside the namespaces it makes, and Destroy removes them all.
//
// The network's faults (partitions, loss, delay) are applied per directed
// pair of addresses by a userspace link, see impair.go.
package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Namespace is one network namespace of the lab.
type Namespace struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// Addr is its address on the bridge.
	Addr netip.Addr
}

// Lab is a hub namespace with a bridge and node namespaces joined to it.
type Lab struct {
	Hub   Namespace
	Nodes []Namespace
	// prefix starts every namespace name, so Destroy and a later run can
	// find exactly what a run created.
	prefix string
	links  *links
}

// Subnet is the lab's private subnet: hub .1, nodes .11 and up.
var Subnet = netip.MustParsePrefix("10.213.0.0/24")

// Create makes the hub and n node namespaces; seed draws which packets a
// lossy link drops. Namespaces left by an earlier
// run with the same prefix (a run that was killed) are removed first, with
// any process still in them. On error, what was created is removed.
func Create(ctx context.Context, prefix string, n int, seed uint64) (lab *Lab, err error) {
	if err := RemoveStale(ctx, prefix); err != nil {
		return nil, err
	}
	lab = &Lab{prefix: prefix, Hub: Namespace{Name: prefix + "hub", Addr: Subnet.Addr().Next()}}
	defer func() {
		if err != nil {
			lab.Destroy(context.WithoutCancel(ctx))
			lab = nil
		}
	}()
	hub := lab.Hub.Name
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "addr", "add", lab.Hub.Addr.String() + "/24", "dev", "br0"},
		{"-n", hub, "link", "set", "br0", "up"},
	}
	if err := ip(ctx, steps...); err != nil {
		return lab, err
	}
	addr := Subnet.Addr()
	for range 11 {
		addr = addr.Next()
	}
	for i := range n {
		node := Namespace{Name: prefix + "n" + strconv.Itoa(i+1), Addr: addr}
		addr = addr.Next()
		lab.Nodes = append(lab.Nodes, node)
		port := "n" + strconv.Itoa(i+1)
		// Both ends are created inside the lab's namespaces: the veth
		// never exists in the host's.
		err := ip(ctx,
			[]string{"netns", "add", node.Name},
			[]string{"-n", node.Name, "link", "set", "lo", "up"},
			[]string{"-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.Name},
			[]string{"-n", hub, "link", "set", port, "master", "br0"},
			[]string{"-n", hub, "link", "set", port, "up"},
			[]string{"-n", node.Name, "addr", "add", node.Addr.String() + "/24", "dev", "eth0"},
			[]string{"-n", node.Name, "link", "set", "eth0", "up"},
		)
		if err != nil {
			return lab, err
		}
	}
	if lab.links, err = newLinks(ctx, append([]Namespace{lab.Hub}, lab.Nodes...), seed); err != nil {
		return lab, err
	}
	return lab, nil
}

// Destroy stops the impairment links, kills any process left in the lab's
// namespaces and deletes them (which deletes the bridge and the veths).
func (l *Lab) Destroy(ctx context.Context) {
	if l.links != nil {
		l.links.close()
	}
	_ = RemoveStale(ctx, l.prefix)
}

// RemoveStale deletes every namespace whose name starts with prefix,
// killing the processes in it first; a run started them.
func RemoveStale(ctx context.Context, prefix string) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("netlab: ip netns list: %w", err)
	}
	var errs []error
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		pids, _ := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output() //nolint:gosec // a namespace name the lab listed
		for p := range strings.FieldsSeq(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGCONT) // a paused process cannot die
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		errs = append(errs, ip(ctx, []string{"netns", "del", name}))
	}
	return errors.Join(errs...)
}

// Command returns a command that runs name with args inside ns.
func (ns Namespace) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...) //nolint:gosec // the harness's own binaries and arguments
}

// DialContext dials addr from inside ns: the socket is created there, so
// the connection lives in ns whatever thread uses it later. It lets the
// harness, which runs in the host's namespace, talk to the lab without
// any interface in the host's namespace.
func (ns Namespace) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Dial is DialContext without a context, the form nats.go's custom dialer
// takes.
func (ns Namespace) Dial(network, addr string) (net.Conn, error) {
	return ns.DialContext(context.Background(), network, addr)
}

// do runs fn on a thread that is inside ns for the duration of the call.
func (ns Namespace) do(fn func() error) error {
	target, err := unix.Open("/run/netns/"+ns.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netlab: open namespace %s: %w", ns.Name, err)
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: open own namespace: %w", err)
	}
	defer unix.Close(home)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: enter namespace %s: %w", ns.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so the runtime ends it with this
		// goroutine instead of reusing it in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("netlab: leave namespace %s: %w", ns.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// ip runs each step as an `ip` command, stopping at the first failure.
func ip(ctx context.Context, steps ...[]string) error {
	for _, args := range steps {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil { //nolint:gosec // arguments the lab builds
			return fmt.Errorf("netlab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// Available reports why the lab cannot be built here, or nil: it needs
// root (namespaces, TUN devices) and the ip command.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netlab: needs the ip command (iproute2)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("netlab: needs /dev/net/tun: %w", err)
	}
	return nil
}

// Listen listens on addr inside ns.
func (ns Namespace) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}
