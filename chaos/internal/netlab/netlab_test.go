package netlab_test

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/klingfan/klingfan/chaos/internal/netlab"
)

// TestLab builds a lab of two nodes and checks that the bridge carries
// traffic, that a partition stops it and a delay holds it, and that Heal
// restores the bridge.
func TestLab(t *testing.T) {
	if err := netlab.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab, err := netlab.Create(ctx, "kfchaostest-", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Destroy(context.Background()) })
	n1, n2 := lab.Nodes[0], lab.Nodes[1]

	ln, err := n2.Listen("tcp", net.JoinHostPort(n2.Addr.String(), "7000"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	addr := ln.Addr().String()

	// roundTrip dials addr from ns and echoes one byte, within d.
	roundTrip := func(ns netlab.Namespace, d time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		start := time.Now()
		c, err := ns.DialContext(ctx, "tcp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		deadline, _ := ctx.Deadline()
		_ = c.SetDeadline(deadline)
		if _, err := c.Write([]byte{1}); err != nil {
			return 0, err
		}
		_, err = c.Read(make([]byte, 1))
		return time.Since(start), err
	}

	for _, ns := range []netlab.Namespace{lab.Hub, n1} {
		if _, err := roundTrip(ns, 5*time.Second); err != nil {
			t.Fatalf("%s → n2 over the bridge: %v", ns.Name, err)
		}
	}

	rules := map[netlab.Pair]netlab.Policy{}
	netlab.Both(rules, n1.Addr, n2.Addr, netlab.Policy{Drop: true})
	if err := lab.Impair(ctx, rules); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(n1, time.Second); err == nil {
		t.Error("n1 → n2 went through a partition")
	}
	if _, err := roundTrip(lab.Hub, 5*time.Second); err != nil {
		t.Errorf("hub → n2 during the n1|n2 partition: %v", err)
	}
	if err := lab.Heal(ctx); err != nil {
		t.Fatal(err)
	}

	const delay = 150 * time.Millisecond
	rules = map[netlab.Pair]netlab.Policy{}
	netlab.Both(rules, n1.Addr, n2.Addr, netlab.Policy{Delay: delay})
	if err := lab.Impair(ctx, rules); err != nil {
		t.Fatal(err)
	}
	// A connect and one echo cross the link four times.
	if rtt, err := roundTrip(n1, 10*time.Second); err != nil || rtt < 4*delay {
		t.Errorf("n1 → n2 with %s each way: took %s (want at least %s), err %v", delay, rtt, 4*delay, err)
	}
	if err := lab.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(n1, 5*time.Second); err != nil {
		t.Errorf("n1 → n2 after heal: %v", err)
	}
}
