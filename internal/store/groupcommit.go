package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// groupCommit makes acknowledged writes to one stream of the embedded
// server durable with one fsync for every write that was acknowledged while
// the previous fsync ran.
//
// JetStream's own sync_always fsyncs once per message, inside the stream's
// single write loop, and for every stream of the server alike: the id
// index, the job states and consumer positions, which can all be rebuilt or
// redelivered, paid the same fsync as the events. Instead the server runs
// with its interval sync, and the writes that carry a promise (an event
// before its 2xx, a registration before its answer) wait here. A
// single-replica file store writes each message into its block file before
// it acknowledges it, so an fsync of the stream's newest block files that
// starts after the acknowledgement covers the message. A block is only
// found after a crash if its name is too, so the first fsync of every new
// block is followed by one of its directory; the file store itself never
// syncs that directory when it starts a block, in either sync mode.
//
// This depends on the file store's layout (<store>/jetstream/$G/streams/
// <stream>/msgs/<n>.blk, n rising by one per new block), which
// TestGroupCommitFollowsBlocks pins for nats-server fileStoreLayoutVersion.
type groupCommit struct {
	dir  string // the stream's msgs directory
	reqs chan chan error
	quit chan struct{}
	done chan struct{}

	// rounds counts fsync rounds, for tests.
	rounds atomic.Uint64
	// synced, when not nil, is called with the path of every file and
	// directory after its fsync succeeded, in order; tests set it through
	// Config.syncedHook.
	synced func(path string)

	// Owned by run once started.
	f     *os.File // the block followed last, open for fsync; nil when none is held
	index uint64   // its number, or the one below the block sync takes up next
	// dirPending says the held block's directory entry has not been
	// fsynced yet: a round that failed between the block's fsync and its
	// directory's must not let the next round, which only re-syncs the
	// held block, answer for a name that may not be on disk.
	dirPending bool
}

// fileStoreLayoutVersion is the nats-server release whose file store the
// group commit was checked against: the block files' names and directory
// (TestGroupCommitFollowsBlocks), a block written before its message is
// acknowledged (flush in place for a single replica), and a new block
// numbered one above the last. TestNATSServerIsTheCheckedOne fails when
// go.mod moves to another release.
const fileStoreLayoutVersion = "v2.15.2"

// groupCommitQueue bounds the writes waiting for the next fsync; more wait
// to enqueue.
const groupCommitQueue = 4096

// errCommitStopped reports a wait cut short because the store is closing.
var errCommitStopped = fmt.Errorf("store: closing before the write was synced: %w", ErrUnavailable)

// startGroupCommit syncs the blocks of stream in the embedded server's
// store directory storeDir until stop. The stream must exist: it first
// makes the stream's own files and directory entries durable, up to
// storeDir's entry in its parent, and takes its newest block as the one
// to follow, so no block written from now on is missed.
func startGroupCommit(storeDir, stream string, synced func(path string)) (*groupCommit, error) {
	g := &groupCommit{
		dir:    filepath.Join(storeDir, "jetstream", "$G", "streams", stream, "msgs"),
		reqs:   make(chan chan error, groupCommitQueue),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		synced: synced,
	}
	if err := g.syncStreamEntries(filepath.Dir(storeDir)); err != nil {
		return nil, fmt.Errorf("store: fsync stream %s: %w", stream, err)
	}
	if err := g.followNewest(); err != nil {
		return nil, fmt.Errorf("store: find the newest block of stream %s: %w", stream, err)
	}
	go g.run()
	return g, nil
}

// startGroupCommits starts the group commits of the events stream and the
// registrations bucket, and routes the bucket's writes through its own.
func (s *Store) startGroupCommits(cfg Config) error {
	storeDir := filepath.Join(cfg.DataDir, "jetstream")
	var err error
	if s.commit, err = startGroupCommit(storeDir, StreamName, cfg.syncedHook); err != nil {
		return err
	}
	if s.kvCommit, err = startGroupCommit(storeDir, kvStreamName, cfg.syncedHook); err != nil {
		return err
	}
	s.kv = syncedKV{KeyValue: s.kv, commit: s.kvCommit}
	return nil
}

// wait returns once an fsync that began after the call has finished, or
// with the fsync's error. It is safe on a nil groupCommit (no sync asked).
func (g *groupCommit) wait(ctx context.Context) error {
	if g == nil {
		return nil
	}
	done := make(chan error, 1)
	select {
	case g.reqs <- done:
	case <-g.quit:
		return errCommitStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-g.done:
		// run has stopped: the send above may have won its race with
		// quit after run's last drain, and then nobody answers done.
		select {
		case err := <-done:
			return err
		default:
			return errCommitStopped
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop ends run after its current round and fails the waits it left.
func (g *groupCommit) stop() {
	if g == nil {
		return
	}
	close(g.quit)
	<-g.done
}

func (g *groupCommit) run() {
	defer close(g.done)
	defer func() { _ = g.closeHeld() }()
	var batch []chan error
	for {
		select {
		case <-g.quit:
			g.fail(errCommitStopped)
			return
		case w := <-g.reqs:
			batch = append(batch[:0], w)
		}
		// Everyone who queued while the last fsync ran shares this one.
	drain:
		for {
			select {
			case w := <-g.reqs:
				batch = append(batch, w)
			default:
				break drain
			}
		}
		err := g.sync()
		g.rounds.Add(1)
		if err != nil {
			// The sender retries a 503; the disk may recover.
			err = fmt.Errorf("store: fsync %s: %w: %w", g.dir, ErrUnavailable, err)
		}
		for _, w := range batch {
			w <- err
		}
	}
}

// fail answers every queued wait with err.
func (g *groupCommit) fail(err error) {
	for {
		select {
		case w := <-g.reqs:
			w <- err
		default:
			return
		}
	}
}

// sync fsyncs the block followed last and every newer one, each new
// block's directory after the block.
func (g *groupCommit) sync() error {
	if err := g.syncHeld(); err != nil {
		return err
	}
	for {
		next, err := g.next()
		if next == 0 || err != nil {
			return err
		}
		path := filepath.Join(g.dir, blockName(next))
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			// Removed since it was found, with its messages; the blocks
			// after it may hold acknowledged ones. The held block was
			// synced above and takes no more writes (only the newest
			// does), so it is let go and the search goes on above.
			if err := g.closeHeld(); err != nil {
				return err
			}
			g.index = next
			continue
		}
		if err != nil {
			return err
		}
		if err := g.closeHeld(); err != nil {
			_ = f.Close()
			return err
		}
		g.f, g.index, g.dirPending = f, next, true
		if err := g.fsync(f, path); err != nil {
			return err
		}
		if err := g.syncPendingDir(); err != nil {
			return err
		}
	}
}

// syncPendingDir fsyncs the directory when the held block's entry in it
// has not been synced yet.
func (g *groupCommit) syncPendingDir() error {
	if !g.dirPending {
		return nil
	}
	if err := g.syncDir(g.dir); err != nil {
		return err
	}
	g.dirPending = false
	return nil
}

// next returns the number of the block after the one followed last, or 0
// when there is none yet: the block numbered one above, the file store's
// next. While no block is held (before the first block, or once the file
// store removed the held one because its messages expired or the stream's
// limits discarded them) it is the oldest block numbered above, since the
// blocks right after a removed one may be gone too. A block removed while
// an older one is still held is not looked for: limits and expiry remove
// the oldest blocks first, and a newer block emptied message by message (a
// bucket's superseded revisions) would have to fill, empty and be followed
// by another within one round, while every write to it waits for a round.
func (g *groupCommit) next() (uint64, error) {
	n := g.index + 1
	if _, err := os.Stat(filepath.Join(g.dir, blockName(n))); !errors.Is(err, fs.ErrNotExist) || g.f != nil {
		if err != nil {
			return 0, ignoreNotExist(err)
		}
		return n, nil
	}
	blocks, err := g.blocks()
	if err != nil {
		return 0, err
	}
	if i, _ := slices.BinarySearch(blocks, n); i < len(blocks) {
		return blocks[i], nil
	}
	return 0, nil
}

func ignoreNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// syncHeld fsyncs the block followed last. It follows a block the file
// store rewrote under the same name (compaction writes a new file and
// renames it over the old one), so the fsync reaches the file that holds
// the messages, not the unlinked one; a block the file store removed held
// no message any more, and sync goes on from the blocks after it.
func (g *groupCommit) syncHeld() error {
	if g.f == nil {
		return nil
	}
	path := filepath.Join(g.dir, blockName(g.index))
	onDisk, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return g.closeHeld()
	}
	if err != nil {
		return err
	}
	held, err := g.f.Stat()
	if err != nil {
		return err
	}
	if os.SameFile(onDisk, held) {
		if err := g.fsync(g.f, path); err != nil {
			return err
		}
		return g.syncPendingDir()
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := g.closeHeld(); err != nil {
		_ = f.Close()
		return err
	}
	g.f, g.dirPending = f, true
	if err := g.fsync(f, path); err != nil {
		return err
	}
	return g.syncPendingDir()
}

// followNewest makes the stream's newest block the next one sync takes up
// (with its directory, as for any block new to it), so the blocks before
// it, written before this process acknowledged anything, are left alone.
func (g *groupCommit) followNewest() error {
	blocks, err := g.blocks()
	if err != nil || len(blocks) == 0 {
		return err
	}
	g.index = blocks[len(blocks)-1] - 1
	return nil
}

// blocks lists the numbers of the stream's block files, lowest first.
func (g *groupCommit) blocks() ([]uint64, error) {
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return nil, err
	}
	var blocks []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".blk")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil && n > 0 {
			blocks = append(blocks, n)
		}
	}
	slices.Sort(blocks)
	return blocks, nil
}

// syncStreamEntries makes the stream itself survive a crash: its metadata
// files, and every directory from its msgs directory up to top, so each
// entry on the path (the stream's, the account's, JetStream's own) is on
// disk. The file store writes them without fsync when it runs with its
// interval sync.
func (g *groupCommit) syncStreamEntries(top string) error {
	streamDir := filepath.Dir(g.dir)
	for _, name := range []string{"meta.inf", "meta.sum"} {
		path := filepath.Join(streamDir, name)
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = g.fsync(f, path)
		if err := errors.Join(err, f.Close()); err != nil {
			return err
		}
	}
	for dir := g.dir; ; dir = filepath.Dir(dir) {
		if err := g.syncDir(dir); err != nil {
			return err
		}
		if dir == top || dir == filepath.Dir(dir) {
			return nil
		}
	}
}

func (g *groupCommit) closeHeld() error {
	if g.f == nil {
		return nil
	}
	err := g.f.Close()
	g.f, g.dirPending = nil, false
	return err
}

func (g *groupCommit) fsync(f *os.File, path string) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if g.synced != nil {
		g.synced(path)
	}
	return nil
}

func (g *groupCommit) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = g.fsync(d, dir)
	return errors.Join(err, d.Close())
}

func blockName(n uint64) string { return strconv.FormatUint(n, 10) + ".blk" }
