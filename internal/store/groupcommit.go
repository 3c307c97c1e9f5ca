package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// starts after the acknowledgement covers the message.
//
// This depends on the file store's layout (<store>/jetstream/$G/streams/
// <stream>/msgs/<n>.blk, n rising by one per new block), which
// TestGroupCommitFollowsBlocks pins.
type groupCommit struct {
	dir  string
	reqs chan chan error
	quit chan struct{}
	done chan struct{}

	// rounds counts fsync rounds, for tests.
	rounds atomic.Uint64

	// Owned by run.
	f     *os.File // the newest block file, open for fsync
	index uint64   // its number
}

// groupCommitQueue bounds the writes waiting for the next fsync; more wait
// to enqueue.
const groupCommitQueue = 4096

// errCommitStopped reports a wait cut short because the store is closing.
var errCommitStopped = fmt.Errorf("store: closing before the write was synced: %w", ErrUnavailable)

// startGroupCommit syncs the blocks of stream in the embedded server's
// store directory storeDir until stop.
func startGroupCommit(storeDir, stream string) *groupCommit {
	g := &groupCommit{
		dir:  filepath.Join(storeDir, "jetstream", "$G", "streams", stream, "msgs"),
		reqs: make(chan chan error, groupCommitQueue),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go g.run()
	return g
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
	defer func() {
		if g.f != nil {
			_ = g.f.Close()
		}
	}()
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

// sync fsyncs the newest block and any newer ones that appeared meanwhile,
// and the directory that names a new one.
func (g *groupCommit) sync() error {
	if g.f == nil {
		if err := g.openNewest(); err != nil {
			return err
		}
	}
	for {
		if err := g.reopenIfReplaced(); err != nil {
			return err
		}
		if err := g.f.Sync(); err != nil {
			return err
		}
		next, err := os.Open(filepath.Join(g.dir, blockName(g.index+1)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		_ = g.f.Close()
		g.f, g.index = next, g.index+1
		if err := syncDir(g.dir); err != nil {
			return err
		}
	}
}

// reopenIfReplaced follows a block the file store rewrote under the same
// name (compaction writes a new file and renames it over the old one), so
// the fsync reaches the file that holds the messages, not the unlinked one.
func (g *groupCommit) reopenIfReplaced() error {
	path := filepath.Join(g.dir, blockName(g.index))
	onDisk, err := os.Stat(path)
	if err != nil {
		return err
	}
	held, err := g.f.Stat()
	if err != nil {
		return err
	}
	if os.SameFile(onDisk, held) {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	_ = g.f.Close()
	g.f = f
	return syncDir(g.dir)
}

// openNewest opens the highest-numbered block; it reads the directory
// once, on the first sync.
func (g *groupCommit) openNewest() error {
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return err
	}
	var newest uint64
	for _, e := range entries {
		if n, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".blk"), 10, 64); err == nil && strings.HasSuffix(e.Name(), ".blk") {
			newest = max(newest, n)
		}
	}
	if newest == 0 {
		return fmt.Errorf("no block file in %s", g.dir)
	}
	f, err := os.Open(filepath.Join(g.dir, blockName(newest)))
	if err != nil {
		return err
	}
	g.f, g.index = f, newest
	return syncDir(g.dir)
}

func blockName(n uint64) string { return strconv.FormatUint(n, 10) + ".blk" }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
