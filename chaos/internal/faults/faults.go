// Package faults draws a chaos run's fault schedule from a seed and
// applies each fault to the lab's network and the cluster's processes.
package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/chaos/internal/cluster"
	"github.com/klingfan/klingfan/chaos/internal/netlab"
)

// Kind is a kind of fault.
type Kind string

// The kinds of fault, after the ones Jepsen found JetStream losing
// acknowledged writes under.
const (
	// PartitionNode cuts one node off from the other two.
	PartitionNode Kind = "partition-node"
	// PartitionLeader cuts the event stream's leader off from the others.
	PartitionLeader Kind = "partition-leader"
	// PartitionConnected cuts the node a klingfan replica's NATS
	// connection is on off from the others; the replica still reaches
	// every node. That node answers the replica over a healthy connection
	// but can no longer serve JetStream, so the client does not move by
	// itself.
	PartitionConnected Kind = "partition-connected"
	// Bridge cuts two nodes off from each other while the third sees
	// both: two majorities that overlap in the third.
	Bridge Kind = "bridge"
	// PauseNode stops a node with SIGSTOP and resumes it with SIGCONT, as
	// a long GC pause or a frozen VM would.
	PauseNode Kind = "pause-node"
	// KillNode SIGKILLs a node and restarts it on the same store.
	KillNode Kind = "kill-node"
	// KillAll SIGKILLs the three nodes at once and restarts them, as a
	// power cut of one rack or a careless rolling restart would: the one
	// crash a majority cannot cover for, where what a node acknowledged
	// but had not written to disk yet is lost on every node together.
	KillAll Kind = "kill-all"
	// KillReplica SIGKILLs a klingfan replica and restarts it.
	KillReplica Kind = "kill-replica"
	// Loss drops a share of every packet to and from one node.
	Loss Kind = "loss"
	// Delay holds every packet to and from one node.
	Delay Kind = "delay"
)

// Kinds lists every kind, in the order a schedule draws them from.
var Kinds = []Kind{PartitionNode, PartitionLeader, Bridge, PauseNode, KillNode, KillAll, KillReplica, Loss, Delay, PartitionConnected}

// ParseKinds parses a comma-separated list of kinds; empty means all.
func ParseKinds(list string) ([]Kind, error) {
	if strings.TrimSpace(list) == "" {
		return Kinds, nil
	}
	var kinds []Kind
	for name := range strings.SplitSeq(list, ",") {
		k := Kind(strings.TrimSpace(name))
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("unknown fault kind %q (kinds: %s)", k, kindNames())
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

func kindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Fault is one drawn fault.
type Fault struct {
	Kind Kind
	// Nodes are the node indexes it concerns: the node cut off, paused,
	// killed or impaired; for Bridge the two ends, then the bridge node.
	// PartitionLeader and PartitionConnected find their node when applied.
	Nodes []int
	// Replica is the replica KillReplica kills, or whose node
	// PartitionConnected cuts off.
	Replica int
	Loss    float64
	Delay   time.Duration
	// Hold is how long the fault lasts before it is healed.
	Hold time.Duration
	// Leader is the node that led the event stream when the fault was
	// applied, -1 when unknown.
	Leader int
}

func (f Fault) String() string { return f.Label() + " for " + f.Hold.String() }

// Label names the fault and its target, without its duration.
func (f Fault) Label() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	switch f.Kind {
	case PartitionNode, PauseNode, KillNode, PartitionLeader:
		if len(f.Nodes) > 0 {
			fmt.Fprintf(&b, " %s", nodeName(f.Nodes[0]))
			if f.Leader == f.Nodes[0] && f.Kind != PartitionLeader {
				b.WriteString(" (leader)")
			}
		}
	case Bridge:
		fmt.Fprintf(&b, " %s|%s via %s", nodeName(f.Nodes[0]), nodeName(f.Nodes[1]), nodeName(f.Nodes[2]))
	case KillReplica:
		fmt.Fprintf(&b, " %c", 'a'+f.Replica)
	case PartitionConnected:
		fmt.Fprintf(&b, " %c", 'a'+f.Replica)
		if len(f.Nodes) > 0 {
			fmt.Fprintf(&b, " (%s", nodeName(f.Nodes[0]))
			if f.Leader == f.Nodes[0] {
				b.WriteString(", leader")
			}
			b.WriteString(")")
		}
	case Loss:
		fmt.Fprintf(&b, " %s %.0f%%", nodeName(f.Nodes[0]), 100*f.Loss)
	case Delay:
		fmt.Fprintf(&b, " %s %s±%s", nodeName(f.Nodes[0]), f.Delay, f.Delay/5)
	}
	return b.String()
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

// Schedule draws n faults of the given kinds from seed: every kind once
// in a random order, then again. Each holds between minHold and maxHold.
// The same seed and kinds give the same schedule.
func Schedule(seed uint64, n int, minHold, maxHold time.Duration, from []Kind) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0x6b6c696e6763)) //nolint:gosec // a reproducible schedule, not a secret
	kinds := make([]Kind, 0, n)
	for len(kinds) < n {
		perm := rng.Perm(len(from))
		for _, p := range perm {
			if len(kinds) < n {
				kinds = append(kinds, from[p])
			}
		}
	}
	faults := make([]Fault, 0, n)
	for _, k := range kinds {
		hold := minHold + time.Duration(rng.Int64N(int64(maxHold-minHold)+1))
		f := Fault{Kind: k, Hold: hold.Round(100 * time.Millisecond), Leader: -1}
		perm := rng.Perm(3)
		switch k {
		case Bridge:
			f.Nodes = perm
		case PartitionLeader, PartitionConnected, KillAll:
		default:
			f.Nodes = perm[:1]
		}
		switch k {
		case KillReplica, PartitionConnected:
			f.Replica = rng.IntN(2)
		case Loss:
			f.Loss = 0.10 + 0.05*float64(rng.IntN(5)) // 10% to 30%
		case Delay:
			f.Delay = time.Duration(50+25*rng.IntN(7)) * time.Millisecond // 50 to 200 ms
		}
		faults = append(faults, f)
	}
	return faults
}

// Env is what faults act on.
type Env struct {
	Lab     *netlab.Lab
	Cluster *cluster.Cluster
	JS      jetstream.JetStream
}

// Apply starts f and returns it as applied (PartitionLeader with the
// leader it found) and the function that heals it.
func Apply(ctx context.Context, env Env, f Fault) (Fault, func(context.Context) error, error) {
	nodes := env.Cluster.Nodes
	leader, lerr := env.Cluster.Leader(ctx, env.JS)
	f.Leader = leader
	switch f.Kind {
	case PartitionLeader:
		if lerr != nil {
			return f, nil, fmt.Errorf("find the stream leader: %w", lerr)
		}
		f.Nodes = []int{leader}
		return f, env.Lab.Heal, partition(ctx, env.Lab, f.Nodes[0])
	case PartitionConnected:
		node, err := connectedNode(ctx, env.Cluster, f.Replica)
		if err != nil {
			return f, nil, err
		}
		f.Nodes = []int{node}
		return f, env.Lab.Heal, partition(ctx, env.Lab, node)
	case PartitionNode:
		return f, env.Lab.Heal, partition(ctx, env.Lab, f.Nodes[0])
	case Bridge:
		rules := map[netlab.Pair]netlab.Policy{}
		netlab.Both(rules, env.Lab.Nodes[f.Nodes[0]].Addr, env.Lab.Nodes[f.Nodes[1]].Addr, netlab.Policy{Drop: true})
		return f, env.Lab.Heal, env.Lab.Impair(ctx, rules)
	case Loss, Delay:
		p := netlab.Policy{Loss: f.Loss, Delay: f.Delay, Jitter: f.Delay / 5}
		rules := map[netlab.Pair]netlab.Policy{}
		target := env.Lab.Nodes[f.Nodes[0]].Addr
		for _, ns := range append([]netlab.Namespace{env.Lab.Hub}, env.Lab.Nodes...) {
			if ns.Addr != target {
				netlab.Both(rules, target, ns.Addr, p)
			}
		}
		return f, env.Lab.Heal, env.Lab.Impair(ctx, rules)
	case PauseNode:
		n := nodes[f.Nodes[0]]
		return f, func(context.Context) error { return n.Signal(syscall.SIGCONT) }, n.Signal(syscall.SIGSTOP)
	case KillNode:
		n := nodes[f.Nodes[0]]
		n.Kill()
		return f, func(context.Context) error { return n.Start() }, nil
	case KillAll:
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(n.Kill)
		}
		wg.Wait()
		return f, func(context.Context) error {
			var errs []error
			for _, n := range nodes {
				errs = append(errs, n.Start())
			}
			return errors.Join(errs...)
		}, nil
	case KillReplica:
		r := env.Cluster.Replicas[f.Replica]
		r.Kill()
		return f, func(context.Context) error { return r.Start() }, nil
	}
	return f, nil, fmt.Errorf("unknown fault kind %q", f.Kind)
}

// connectedNode waits up to connectedWait for replica j to have one NATS
// connection (it may be reconnecting after the previous fault) and returns
// its node.
func connectedNode(ctx context.Context, c *cluster.Cluster, j int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, connectedWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		node, err := c.ConnectedNode(j)
		if err == nil {
			return node, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("find replica %c's node: %w", 'a'+j, err)
		case <-tick.C:
		}
	}
}

// connectedWait bounds connectedNode's wait.
const connectedWait = 10 * time.Second

// partition cuts node off from the other nodes; the hub, where the
// replicas run, still reaches it.
func partition(ctx context.Context, lab *netlab.Lab, node int) error {
	rules := map[netlab.Pair]netlab.Policy{}
	cut := lab.Nodes[node].Addr
	for i, n := range lab.Nodes {
		if i != node {
			netlab.Both(rules, cut, n.Addr, netlab.Policy{Drop: true})
		}
	}
	return lab.Impair(ctx, rules)
}
