package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// The group commit finds the file store's blocks where it expects them and
// follows new ones: after every Append the block it synced last is the
// newest one, and it holds that event. A nats-server whose file store
// moved or renamed its blocks fails here rather than syncing nothing.
func TestGroupCommitFollowsBlocks(t *testing.T) {
	dir := t.TempDir()
	// A 100 kB log gets JetStream's smallest blocks (32 kB), so the
	// appends below cross several.
	s, err := Open(context.Background(), Config{DataDir: dir, SyncAlways: true, MaxStoreBytes: 64 << 20, RetentionBytes: 100_000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.commit == nil || s.kvCommit == nil {
		t.Fatal("SyncAlways on the embedded store started no group commit")
	}
	first := uint64(0)
	for i := range 40 {
		marker := fmt.Sprintf("marker-%03d-%s", i, strings.Repeat("x", 3000))
		ev := &gatewayv1.Event{Id: fmt.Sprintf("e%d", i), WebhookId: "w", DeliveryId: fmt.Sprint(i), RawBody: []byte(marker), Job: &gatewayv1.Job{JobId: fmt.Sprint(i)}}
		if _, _, err := s.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		// Append waited for a round: its results are visible here.
		newest := newestBlock(t, s.commit.dir)
		if s.commit.index != newest {
			t.Fatalf("after append %d the group commit synced block %d, the newest is %d", i, s.commit.index, newest)
		}
		raw, err := os.ReadFile(filepath.Join(s.commit.dir, blockName(newest)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte(marker[:len("marker-000")])) {
			t.Fatalf("block %d does not hold event %d", newest, i)
		}
		if first == 0 {
			first = newest
		}
	}
	if s.commit.index < first+2 {
		t.Errorf("the appends crossed blocks %d to %d; the test wants at least two new blocks", first, s.commit.index)
	}
}

// Concurrent appends share fsyncs: every one returns, and fewer fsync
// rounds run than there were appends.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), SyncAlways: true, MaxStoreBytes: 64 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				id := fmt.Sprintf("e%d-%d", w, i)
				ev := &gatewayv1.Event{Id: id, WebhookId: "w", DeliveryId: id, Job: &gatewayv1.Job{JobId: id}}
				if _, _, err := s.Append(context.Background(), ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if rounds := s.commit.rounds.Load(); rounds >= 16*20 {
		t.Errorf("%d fsync rounds for %d appends: none was shared", rounds, 16*20)
	} else {
		t.Logf("%d fsync rounds for %d appends", rounds, 16*20)
	}
}

func newestBlock(t *testing.T, dir string) uint64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var newest uint64
	for _, e := range entries {
		var n uint64
		if _, err := fmt.Sscanf(e.Name(), "%d.blk", &n); err == nil {
			newest = max(newest, n)
		}
	}
	return newest
}

// A block the file store rewrites under its own name (compaction renames a
// new file over it) is followed: the next fsync reaches the new file.
func TestGroupCommitFollowsARewrittenBlock(t *testing.T) {
	dir := t.TempDir()
	msgs := streamLayout(t, dir, "S")
	block := filepath.Join(msgs, "1.blk")
	if err := os.WriteFile(block, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := startGroupCommit(dir, "S", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.stop()
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(block+".tmp", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(block+".tmp", block); err != nil {
		t.Fatal(err)
	}
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	held, err := g.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.Stat(block)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(held, onDisk) {
		t.Error("the group commit still syncs the replaced block")
	}
}

// A wait that starts after stop returns at once with ErrUnavailable, even
// when its request fits in the queue that run no longer reads, and even
// with a context that never ends.
func TestGroupCommitWaitAfterStop(t *testing.T) {
	dir := t.TempDir()
	streamLayout(t, dir, "s")
	g, err := startGroupCommit(dir, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	g.stop()
	for i := range 100 { // the send and quit race in wait's select
		done := make(chan error, 1)
		go func() { done <- g.wait(context.Background()) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("wait %d after stop: %v, want ErrUnavailable", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("wait %d after stop never returned", i)
		}
	}
}

// Stored answers found only after an fsync round that began after the
// lookup, because ingest acknowledges a rate-limited repeat on its
// strength while the original's append may still await its fsync; a miss
// costs no round.
func TestStoredWaitsForSync(t *testing.T) {
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), SyncAlways: true, MaxStoreBytes: 64 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := &gatewayv1.Event{Id: "e1", WebhookId: "w", DeliveryId: "d1", Job: &gatewayv1.Job{JobId: "j"}}
	if _, _, err := s.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ev         *gatewayv1.Event
		wantFound  bool
		wantRounds uint64
	}{
		{"stored", ev, true, 1},
		{"not stored", &gatewayv1.Event{Id: "e2", WebhookId: "w", DeliveryId: "d2", Job: &gatewayv1.Job{JobId: "j"}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.commit.rounds.Load()
			_, found, err := s.Stored(context.Background(), tt.ev)
			if err != nil || found != tt.wantFound {
				t.Fatalf("Stored: found %v, err %v; want found %v", found, err, tt.wantFound)
			}
			if got := s.commit.rounds.Load() - before; got != tt.wantRounds {
				t.Errorf("Stored ran %d fsync rounds, want %d", got, tt.wantRounds)
			}
		})
	}
}

// streamLayout lays out an empty stream as the file store does under
// storeDir and returns its msgs directory, for tests of the group commit
// alone.
func streamLayout(t *testing.T, storeDir, stream string) string {
	t.Helper()
	streamDir := filepath.Join(storeDir, "jetstream", "$G", "streams", stream)
	msgs := filepath.Join(streamDir, "msgs")
	if err := os.MkdirAll(msgs, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"meta.inf", "meta.sum"} {
		if err := os.WriteFile(filepath.Join(streamDir, name), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

// syncLog records, in order, the paths the group commits fsync.
type syncLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *syncLog) add(path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paths = append(l.paths, path)
}

// mark returns how many fsyncs have finished so far.
func (l *syncLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.paths)
}

func (l *syncLog) upTo(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.paths[:n])
}

// acked is an event whose write returned at the syncLog's mark synced.
type acked struct {
	marker string
	synced int
}

// Every block that holds an acknowledged event had, before the event's
// write returned, an fsync of the block file and after it one of the
// directory that names the block (the file store never syncs that
// directory for a new block); and the stream's own entries, up to the data
// directory, were synced before the first write returned. The cases roll
// blocks one write at a time, under concurrent writes, before the group
// commit's first round, and after the file store removed the block it
// followed.
func TestGroupCommitSyncsEveryNewBlocksDirectory(t *testing.T) {
	tests := []struct {
		name      string
		retention time.Duration
		// write stores events and returns those that must still be in the
		// log when it returns, with the mark at which each was acknowledged.
		write func(t *testing.T, s *Store, log *syncLog) []acked
	}{
		{"one at a time", 0, func(t *testing.T, s *Store, log *syncLog) []acked {
			var out []acked
			for i := range 30 {
				out = append(out, appendMarked(t, s, log, fmt.Sprintf("seq-%03d", i)))
			}
			return out
		}},
		{"16 at once", 0, func(t *testing.T, s *Store, log *syncLog) []acked {
			var mu sync.Mutex
			var out []acked
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					for i := range 2 {
						a := appendMarked(t, s, log, fmt.Sprintf("par-%02d-%d", w, i))
						mu.Lock()
						out = append(out, a)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			return out
		}},
		{"acknowledged before the first round", 0, func(t *testing.T, s *Store, log *syncLog) []acked {
			// JetStream acknowledges these and nobody waits for them: the
			// rounds that follow must still reach the blocks they rolled.
			var markers []string
			for i := range 25 {
				marker := fmt.Sprintf("raw-%03d", i)
				data, err := marshalOpts.Marshal(markedEvent(marker))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.js.PublishMsg(context.Background(), &nats.Msg{Subject: eventSubject(markedEvent(marker)), Data: data}); err != nil {
					t.Fatal(err)
				}
				markers = append(markers, marker)
			}
			last := appendMarked(t, s, log, "after-raw")
			out := []acked{last}
			for _, m := range markers {
				out = append(out, acked{m, last.synced})
			}
			return out
		}},
		{"after its block expired", time.Second, func(t *testing.T, s *Store, log *syncLog) []acked {
			first := appendMarked(t, s, log, "expires")
			followed := s.commit.dir + string(filepath.Separator) + blockName(s.commit.index)
			if !slices.Contains(log.upTo(first.synced), followed) {
				t.Fatalf("the first round did not sync %s", followed)
			}
			// Once every message of the newest block expired, the file
			// store starts a new block and removes the old one.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := os.Stat(followed); errors.Is(err, fs.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s was not removed after its message expired", followed)
				}
				time.Sleep(50 * time.Millisecond) // polling a condition, not ordering events
			}
			return []acked{appendMarked(t, s, log, "after-expiry")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			log := &syncLog{}
			// A 100 kB log gets JetStream's smallest blocks (32 kB): 2 kB
			// events roll a block every 15 or so.
			s, err := Open(context.Background(), Config{DataDir: dir, SyncAlways: true, MaxStoreBytes: 64 << 20, RetentionBytes: 100_000,
				Retention: tt.retention, DuplicateWindow: tt.retention, syncedHook: log.add,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			msgs := s.commit.dir
			acks := tt.write(t, s, log)

			blocksHolding := map[string]uint64{}
			held := map[uint64]bool{}
			for _, n := range mustBlocks(t, s.commit) {
				raw, err := os.ReadFile(filepath.Join(msgs, blockName(n)))
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range acks {
					if bytes.Contains(raw, []byte(a.marker+"|")) {
						blocksHolding[a.marker] = n
						held[n] = true
					}
				}
			}
			if tt.retention == 0 && len(held) < 2 {
				t.Fatalf("the events filled %d block(s); the test wants new blocks", len(held))
			}
			streamDir := filepath.Dir(msgs)
			entries := []string{filepath.Join(streamDir, "meta.inf"), filepath.Join(streamDir, "meta.sum"), msgs, streamDir,
				filepath.Dir(streamDir), filepath.Join(dir, "jetstream", "jetstream", "$G"), filepath.Join(dir, "jetstream", "jetstream"),
				filepath.Join(dir, "jetstream"), dir}
			for _, a := range acks {
				n, ok := blocksHolding[a.marker]
				if !ok {
					t.Fatalf("no block holds acknowledged event %s", a.marker)
				}
				before := log.upTo(a.synced)
				for _, e := range entries {
					if !slices.Contains(before, e) {
						t.Fatalf("event %s was acknowledged before %s was synced", a.marker, e)
					}
				}
				block := filepath.Join(msgs, blockName(n))
				i := slices.Index(before, block)
				if i < 0 {
					t.Fatalf("event %s was acknowledged before its block %s was synced", a.marker, blockName(n))
				}
				if !slices.Contains(before[i+1:], msgs) {
					t.Fatalf("event %s was acknowledged before the directory naming its block %s was synced", a.marker, blockName(n))
				}
			}
			t.Logf("%d events in blocks %v; %d fsyncs", len(acks), slices.Sorted(maps.Keys(held)), log.mark())
		})
	}
}

// markedEvent is an event of about 2 kB whose stored bytes contain
// marker followed by "|".
func markedEvent(marker string) *gatewayv1.Event {
	return &gatewayv1.Event{Id: marker, WebhookId: "w", DeliveryId: marker, Job: &gatewayv1.Job{JobId: marker},
		RawBody: []byte(marker + "|" + strings.Repeat("x", 2000))}
}

// appendMarked appends markedEvent(marker) and returns it with the mark at
// which Append returned.
func appendMarked(t *testing.T, s *Store, log *syncLog, marker string) acked {
	t.Helper()
	if _, _, err := s.Append(context.Background(), markedEvent(marker)); err != nil {
		t.Fatalf("append %s: %v", marker, err)
	}
	return acked{marker, log.mark()}
}

func mustBlocks(t *testing.T, g *groupCommit) []uint64 {
	t.Helper()
	blocks, err := g.blocks()
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// When the file store removed the block followed last and the blocks
// right after it (their messages expired together), the next round goes
// on from the oldest block left and syncs its directory.
func TestGroupCommitSkipsRemovedBlocks(t *testing.T) {
	dir := t.TempDir()
	msgs := streamLayout(t, dir, "S")
	write := func(n uint64) {
		if err := os.WriteFile(filepath.Join(msgs, blockName(n)), []byte("m"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	log := &syncLog{}
	g, err := startGroupCommit(dir, "S", log.add)
	if err != nil {
		t.Fatal(err)
	}
	defer g.stop()
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	write(2)
	write(3)
	write(4)
	for _, n := range []uint64{1, 2, 3} {
		if err := os.Remove(filepath.Join(msgs, blockName(n))); err != nil {
			t.Fatal(err)
		}
	}
	from := log.mark()
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(msgs, blockName(4)), msgs}
	if got := log.upTo(log.mark())[from:]; !slices.Equal(got, want) {
		t.Errorf("after blocks 1 to 3 were removed the round synced %q, want %q", got, want)
	}
}

// A round that fails between a new block's fsync and its directory's
// answers 503; the next round must sync that directory before it answers
// for the writes in the block, although it only re-syncs a block it
// already holds.
func TestGroupCommitRetriesADirectorySyncThatFailed(t *testing.T) {
	dir := t.TempDir()
	msgs := streamLayout(t, dir, "S")
	var (
		mu      sync.Mutex
		synced  []string
		faulted bool
	)
	hook := func(path string) {
		mu.Lock()
		defer mu.Unlock()
		synced = append(synced, path)
		if !faulted && path == filepath.Join(msgs, blockName(1)) {
			// The directory cannot be opened for its fsync this once.
			faulted = true
			if err := os.Rename(msgs, msgs+".away"); err != nil {
				t.Error(err)
			}
		}
	}
	g, err := startGroupCommit(dir, "S", hook)
	if err != nil {
		t.Fatal(err)
	}
	defer g.stop()
	if err := os.WriteFile(filepath.Join(msgs, blockName(1)), []byte("m"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.wait(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the round whose directory fsync failed answered %v, want ErrUnavailable", err)
	}
	if err := os.Rename(msgs+".away", msgs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	from := len(synced)
	mu.Unlock()
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{filepath.Join(msgs, blockName(1)), msgs}
	if got := synced[from:]; !slices.Equal(got, want) {
		t.Errorf("the round after the failure synced %q, want %q", got, want)
	}
}

// The group commit's durability rests on the file store's internals, which
// no release promises to keep: a different nats-server in go.mod fails
// here until someone has re-checked them and moved the pin.
func TestNATSServerIsTheCheckedOne(t *testing.T) {
	// Test binaries carry no module list (debug.ReadBuildInfo has no
	// Deps), so the server's own constant tells the release.
	got := "v" + server.VERSION
	if got == fileStoreLayoutVersion {
		return
	}
	t.Fatalf(`nats-server is %s, but the group commit (internal/store/groupcommit.go) was checked against %s.
Before moving the pin, re-check against the new release's server/filestore.go and server/stream.go:
 1. The layout: a stream's blocks are <store>/jetstream/$G/streams/<stream>/msgs/<n>.blk (streamsDir, msgDir,
    blkScan) beside meta.inf and meta.sum (JetStreamMetaFile, JetStreamMetaFileSum), and a new block is
    numbered lmb.index+1 (fileStore.newMsgBlockForWrite). Run with -race:
    go test -race -run 'TestGroupCommit' ./internal/store/
    (TestGroupCommitFollowsBlocks pins the layout, TestGroupCommitSyncsEveryNewBlocksDirectory the fsyncs).
 2. The flush path: a single-replica stream flushes in place (fs.fip = !fcfg.AsyncFlush; AsyncFlush only with
    Replicas > 1 or PersistMode async: Account.addStreamWithAssignmentAndMode), so flushPendingMsgsLocked has
    written each message to its block file before JetStream acknowledges it; and the file store still does not
    fsync the msgs directory for a new block (else the group commit's directory sync is redundant, not wrong).
 3. Whether the release now offers one fsync per group of concurrent appends itself, which would replace the
    group commit (docs/performance.md, "fsync before 2xx: group commit", has what 2.15.2 offers):
    go test -run '^$' -bench 'BenchmarkJetStreamSync|BenchmarkAppendSync' -benchtime 3s -cpu 2 ./internal/store/
Then set fileStoreLayoutVersion in internal/store/groupcommit.go to %q.`, got, fileStoreLayoutVersion, got)
}
