package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/klingfan/klingfan/internal/store"
)

// A server that stops serving JetStream while the client's connection to
// it stays up (here JetStream is switched off on it; in a cluster, the
// node is cut off from the others) loses the store to another server of
// its list: appends fail for a couple of seconds, then succeed through the
// other server, and the move is logged and counted once.
func TestStoreLeavesServerThatStopsServingJetStream(t *testing.T) {
	servers := []*server.Server{startNATS(t, nil), startNATS(t, nil)}
	// Two independent servers, each given the store's assets, stand in
	// for two nodes of one cluster: only the move is under test.
	var urls []string
	for _, ns := range servers {
		s, err := openExternal(t, store.Config{URL: ns.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, ns.ClientURL())
	}
	var logs lockedBuffer
	s, err := openExternal(t, store.Config{URL: strings.Join(urls, ","),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
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
