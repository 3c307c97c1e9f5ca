package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/store"
)

// A server that stops serving JetStream while the client's connection to
// it stays up (here JetStream is switched off on it; in a cluster, the
// node is cut off from the others) loses the store to another server of
// its list: appends fail for a couple of seconds, then succeed through the
// other server, and the move is logged and counted once.
func TestStoreLeavesServerThatStopsServingJetStream(t *testing.T) {
	// Two independent servers, each given the store's assets, stand in
	// for two nodes of one cluster: only the move is under test.
	servers, s, logs := openOnServers(t, 2)
	mustAppend(t, s, testEvent("wh", "before", "job-before"))

	from, to := connectedServer(t, servers)
	if err := from.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	if from.NumClients() != 1 {
		t.Fatalf("the store's connection did not survive JetStream being disabled: %d clients", from.NumClients())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	failures := 0
	for i := 0; ; i++ {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		_, _, err := s.Append(actx, testEvent("wh", fmt.Sprintf("d%d", i), fmt.Sprintf("job-%d", i)))
		acancel()
		if err == nil {
			break
		}
		failures++
		select {
		case <-ctx.Done():
			t.Fatalf("appends still failing %d times over: %v", failures, err)
		case <-tick.C:
		}
	}
	if failures == 0 {
		t.Fatal("no append failed: JetStream was not off on the connected server")
	}
	if n := to.NumClients(); n != 1 {
		t.Errorf("the other server has %d clients, want the store's", n)
	}
	var moves uint64
	for _, r := range store.SwitchReasons {
		moves += s.ServerSwitches(r)
	}
	if moves != 1 {
		t.Errorf("%d forced reconnects counted, want 1 (no_responders %d, jetstream_unavailable %d, no_answer %d)", moves,
			s.ServerSwitches(store.SwitchNoResponders), s.ServerSwitches(store.SwitchUnavailable), s.ServerSwitches(store.SwitchNoAnswer))
	}
	line := "NATS server is not serving JetStream; reconnecting to another"
	if got := strings.Count(logs.String(), line); got != 1 {
		t.Errorf("log has %d lines %q, want 1:\n%s", got, line, logs.String())
	}
	if !strings.Contains(logs.String(), "server="+from.Name()) {
		t.Errorf("the log does not name the server left (%s):\n%s", from.Name(), logs.String())
	}
}

// A replica that moved while no server could answer (the cluster was
// electing a leader) may land on the one node that is cut off; it must not
// stay there for the gap that spaces moves once moving has not helped for
// a while: right after a move, the next one comes after the same 2 s.
func TestStoreMovesOnUntilAServerAnswers(t *testing.T) {
	servers, s, logs := openOnServers(t, 3)
	mustAppend(t, s, testEvent("wh", "before", "job-before"))

	// The client goes to the server after the connected one in its
	// (shuffled) pool: switch JetStream off on both, so the store must
	// move twice.
	pool, connected := store.NATSPool(s)
	at := slices.Index(pool, connected)
	if len(pool) != 3 || at < 0 {
		t.Fatalf("pool %v, connected to %s", pool, connected)
	}
	byURL := map[string]*server.Server{}
	for _, ns := range servers {
		byURL[ns.ClientURL()] = ns
	}
	left := []*server.Server{byURL[pool[at]], byURL[pool[(at+1)%3]]}
	last := byURL[pool[(at+2)%3]]
	for _, ns := range left {
		if err := ns.DisableJetStream(); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		_, _, err := s.Append(actx, testEvent("wh", fmt.Sprintf("d%d", i), fmt.Sprintf("job-%d", i)))
		acancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("appends still failing: %v", err)
		case <-tick.C:
		}
	}
	if last.NumClients() != 1 {
		t.Errorf("appends succeed, but not through %s, the one server serving JetStream", last.Name())
	}

	moves := regexp.MustCompile(`time=(\S+) level=WARN msg="NATS server is not serving JetStream; reconnecting to another" server=(\S+)`).FindAllStringSubmatch(logs.String(), -1)
	if len(moves) != 2 {
		t.Fatalf("%d moves logged, want 2:\n%s", len(moves), logs.String())
	}
	for k, ns := range left {
		if moves[k][2] != ns.Name() {
			t.Errorf("move %d left %s, want %s", k+1, moves[k][2], ns.Name())
		}
	}
	t1, err1 := time.Parse(time.RFC3339Nano, moves[0][1])
	t2, err2 := time.Parse(time.RFC3339Nano, moves[1][1])
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	// The gap, when it applies, is 10 s less its 20 % jitter at least.
	if d := t2.Sub(t1); d >= 8*time.Second {
		t.Errorf("the second move came %s after the first: it waited for the gap instead of going on with the pass", d)
	}
}

// connectedServer returns the server holding the store's connection and
// the other one.
func connectedServer(t *testing.T, servers []*server.Server) (from, to *server.Server) {
	t.Helper()
	switch {
	case servers[0].NumClients() == 1 && servers[1].NumClients() == 0:
		return servers[0], servers[1]
	case servers[1].NumClients() == 1 && servers[0].NumClients() == 0:
		return servers[1], servers[0]
	}
	t.Fatalf("clients per server: %d and %d, want the store's on one", servers[0].NumClients(), servers[1].NumClients())
	return nil, nil
}

// openOnServers starts n independent NATS servers, gives each the store's
// assets, and opens a store whose server list is all of them, logging to
// the buffer it returns.
func openOnServers(t *testing.T, n int) ([]*server.Server, *store.Store, *lockedBuffer) {
	t.Helper()
	var (
		servers []*server.Server
		urls    []string
	)
	for range n {
		ns := apptest.StartNATS(t, nil)
		s, err := openExternal(t, store.Config{URL: ns.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		servers, urls = append(servers, ns), append(urls, ns.ClientURL())
	}
	logs := new(lockedBuffer)
	s, err := openExternal(t, store.Config{URL: strings.Join(urls, ","),
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return servers, s, logs
}
