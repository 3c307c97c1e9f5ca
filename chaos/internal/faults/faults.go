// Package faults draws a chaos run's fault schedule from a seed and
// applies each fault to the lab's network and the cluster's processes.
package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
var Kinds = []Kind{PartitionNode, PartitionLeader, Bridge, PauseNode, KillNode, KillAll, KillReplica, Loss, Delay}

// Fault is one drawn fault.
type Fault struct {
	Kind Kind
	// Nodes are the node indexes it concerns: the node cut off, paused,
	// killed or impaired; for Bridge the two ends, then the bridge node.
	// PartitionLeader finds its node when applied.
	Nodes   []int
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
	case Loss:
		fmt.Fprintf(&b, " %s %.0f%%", nodeName(f.Nodes[0]), 100*f.Loss)
	case Delay:
		fmt.Fprintf(&b, " %s %s±%s", nodeName(f.Nodes[0]), f.Delay, f.Delay/5)
	}
	return b.String()
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

// Schedule draws n faults from seed: every kind once in a random order,
// then (when n is larger) kinds at random. Each holds between minHold and
// maxHold. The same seed gives the same schedule.
func Schedule(seed uint64, n int, minHold, maxHold time.Duration) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0x6b6c696e6763)) //nolint:gosec // a reproducible schedule, not a secret
	kinds := make([]Kind, 0, n)
	for len(kinds) < n {
		perm := rng.Perm(len(Kinds))
		for _, p := range perm {
			if len(kinds) < n {
				kinds = append(kinds, Kinds[p])
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
		case PartitionLeader, KillAll:
		default:
			f.Nodes = perm[:1]
		}
		switch k {
		case KillReplica:
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
		fallthrough
	case PartitionNode:
		rules := map[netlab.Pair]netlab.Policy{}
		cut := env.Lab.Nodes[f.Nodes[0]].Addr
		for i, n := range env.Lab.Nodes {
			if i != f.Nodes[0] {
				netlab.Both(rules, cut, n.Addr, netlab.Policy{Drop: true})
			}
		}
		return f, env.Lab.Heal, env.Lab.Impair(ctx, rules)
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
