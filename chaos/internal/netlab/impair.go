package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The network's faults go through a userspace link rather than tc netem:
// netem (and tc's actions) are not built into every kernel, this machine's
// included, while TUN devices are. Each namespace has a TUN device; to
// impair the traffic from a to b, a host route in a's namespace sends
// packets for b's address into a's TUN device, the harness reads them,
// drops or holds them as the pair's Policy says, and writes them into b's
// TUN device, where b's kernel receives them as it would from the bridge.
// Healing deletes the routes, so packets take the bridge again; TCP
// connections carry on across the switch, as they would across a
// recovering network.

// tunName is the TUN device in every namespace of the lab.
const tunName = "chaos0"

// Policy is what the link does to the packets of one direction.
type Policy struct {
	// Drop discards every packet: a partition.
	Drop bool
	// Loss is the probability that a packet is discarded.
	Loss float64
	// Delay holds each packet this long, plus or minus up to Jitter.
	Delay, Jitter time.Duration
}

// Pair is one direction of traffic between two addresses of the lab.
type Pair struct{ From, To netip.Addr }

// links forwards between the TUN devices of every namespace.
type links struct {
	byAddr map[netip.Addr]*endpoint
	wg     sync.WaitGroup

	mu     sync.Mutex
	rules  map[Pair]Policy // guarded by mu
	routes []Pair          // guarded by mu: routes into the TUN devices now set
}

type endpoint struct {
	ns  Namespace
	tun *os.File
	rng *rand.Rand // used by this endpoint's forwarding goroutine only
}

func newLinks(ctx context.Context, nss []Namespace, seed uint64) (*links, error) {
	l := &links{byAddr: make(map[netip.Addr]*endpoint, len(nss)), rules: map[Pair]Policy{}}
	for i, ns := range nss {
		tun, err := openTUN(ns)
		if err != nil {
			l.close()
			return nil, err
		}
		l.byAddr[ns.Addr] = &endpoint{ns: ns, tun: tun, rng: rand.New(rand.NewPCG(seed, uint64(i)))} //nolint:gosec // a reproducible fault, not a secret
		if err := ip(ctx, []string{"-n", ns.Name, "link", "set", tunName, "up"}); err != nil {
			l.close()
			return nil, err
		}
	}
	for _, ep := range l.byAddr {
		l.wg.Go(func() { l.forward(ep) })
	}
	return l, nil
}

// openTUN creates the TUN device inside ns: a device belongs to the
// namespace of the thread that creates it.
func openTUN(ns Namespace) (*os.File, error) {
	var tun *os.File
	err := ns.do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(tunName)
		if err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err == nil {
			// Non-blocking, so the runtime poller owns it and Close ends
			// a pending Read.
			err = unix.SetNonblock(fd, true)
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
		tun = os.NewFile(uintptr(fd), "tun "+ns.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: TUN device in %s: %w", ns.Name, err)
	}
	return tun, nil
}

func (l *links) forward(from *endpoint) {
	buf := make([]byte, 1<<16)
	for {
		n, err := from.tun.Read(buf)
		if err != nil {
			return // closed
		}
		pkt := buf[:n]
		if n < 20 || pkt[0]>>4 != 4 {
			continue // not IPv4: the lab has no other traffic worth keeping
		}
		src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		to := l.byAddr[dst]
		if to == nil {
			continue
		}
		l.mu.Lock()
		p := l.rules[Pair{src, dst}]
		l.mu.Unlock()
		if p.Drop || (p.Loss > 0 && from.rng.Float64() < p.Loss) {
			continue
		}
		d := p.Delay
		if p.Jitter > 0 {
			d += time.Duration(from.rng.Int64N(int64(2*p.Jitter))) - p.Jitter
		}
		out := bytes.Clone(pkt)
		if d <= 0 {
			_, _ = to.tun.Write(out)
			continue
		}
		time.AfterFunc(d, func() { _, _ = to.tun.Write(out) }) // a write after close fails harmlessly
	}
}

func (l *links) close() {
	for _, ep := range l.byAddr {
		ep.tun.Close()
	}
	l.wg.Wait()
}

// Impair applies rules on top of what is already impaired: each pair's
// packets go through the link with that pair's policy until Heal.
func (l *Lab) Impair(ctx context.Context, rules map[Pair]Policy) error {
	l.links.mu.Lock()
	defer l.links.mu.Unlock()
	for pair, p := range rules {
		from := l.links.byAddr[pair.From]
		if from == nil || l.links.byAddr[pair.To] == nil {
			return fmt.Errorf("netlab: %s → %s: not an address of the lab", pair.From, pair.To)
		}
		// The rule is in place before the route, so no packet reaches the
		// link without one.
		l.links.rules[pair] = p
		if err := ip(ctx, []string{"-n", from.ns.Name, "route", "replace", pair.To.String() + "/32", "dev", tunName, "src", pair.From.String()}); err != nil {
			return err
		}
		l.links.routes = append(l.links.routes, pair)
	}
	return nil
}

// Heal removes every impairment: packets take the bridge again.
func (l *Lab) Heal(ctx context.Context) error {
	l.links.mu.Lock()
	defer l.links.mu.Unlock()
	var errs []error
	for _, pair := range l.links.routes {
		from := l.links.byAddr[pair.From]
		errs = append(errs, ip(ctx, []string{"-n", from.ns.Name, "route", "del", pair.To.String() + "/32", "dev", tunName}))
	}
	l.links.routes = nil
	clear(l.links.rules)
	return errors.Join(errs...)
}

// Both returns rules applying p to both directions between a and b.
func Both(rules map[Pair]Policy, a, b netip.Addr, p Policy) {
	rules[Pair{a, b}] = p
	rules[Pair{b, a}] = p
}
