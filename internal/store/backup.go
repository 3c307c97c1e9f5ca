package store

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A backup is a tar archive, written as a stream so it never needs room in
// the data directory: for each JetStream stream Assets backs up,
// "<name>/stream.json" (its configuration and state when the snapshot
// began) followed by "<name>/chunk-NNNNNN" entries (JetStream's own
// snapshot, in order, with the durable consumers where Assets says so), and
// last "manifest.json". Restore refuses an archive without the manifest, so
// a backup cut short (a dropped connection) cannot pass for a whole one.
// Format 1 held the registrations and the events only; restore reads both.
const (
	backupFormat  = "klingfan-backup/2"
	backupFormat1 = "klingfan-backup/1"
	manifestEntry = "manifest.json"
	streamEntry   = "stream.json"
	// snapshotChunk is the size of the chunks JetStream sends; each is
	// acknowledged, and at most snapshotWindow bytes are in flight.
	snapshotChunk  = 128 << 10
	snapshotWindow = 8 << 20
	// snapshotIdle bounds the wait for the next chunk.
	snapshotIdle = 30 * time.Second
)

// kvStreamName is the stream behind the registrations bucket.
const kvStreamName = "KV_" + BucketName

// Manifest ends a backup and says what it holds.
type Manifest struct {
	Format    string           `json:"format"`
	CreatedAt time.Time        `json:"created_at"`
	Streams   []StreamManifest `json:"streams"`
}

// StreamManifest describes one stream in a backup.
type StreamManifest struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Chunks   int    `json:"chunks"`
	// Consumers is how many durable consumers (consumer groups'
	// positions) the snapshot holds.
	Consumers int `json:"consumers"`
}

// snapshotHeader is "<name>/stream.json": the snapshot response, which is
// also what a restore request needs.
type snapshotHeader struct {
	Config json.RawMessage `json:"config"`
	State  struct {
		Msgs     uint64 `json:"messages"`
		Bytes    uint64 `json:"bytes"`
		FirstSeq uint64 `json:"first_seq"`
		LastSeq  uint64 `json:"last_seq"`
		// Consumers counts the stream's consumers when the snapshot
		// began, durable and not; the snapshot holds the durable ones.
		Consumers int `json:"consumer_count"`
	} `json:"state"`
}

type apiError struct {
	Error *jetstream.APIError `json:"error,omitempty"`
}

// Backup writes a consistent snapshot of the registrations bucket and the
// events stream to w, using JetStream's snapshot API while the server
// keeps running: every event acknowledged before Backup began is in it.
// Registration secrets are copied as stored, so they stay sealed when
// KLINGFAN_SECRET_KEY is set.
func (s *Store) Backup(ctx context.Context, w io.Writer) (Manifest, error) {
	tw := tar.NewWriter(w)
	m := Manifest{Format: backupFormat, CreatedAt: time.Now().UTC()}
	for _, a := range Assets {
		if a.Backup == BackupSkip {
			continue
		}
		// An asset not made yet (reconcile off, no group ever
		// created) holds nothing to lose.
		if _, err := s.js.Stream(ctx, a.Stream); errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		} else if err != nil {
			return m, classify("backup: look up "+a.Stream, err)
		}
		sm, err := s.snapshotStream(ctx, a.Stream, a.Backup == BackupWithConsumers, tw)
		if err != nil {
			return m, err
		}
		m.Streams = append(m.Streams, sm)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := writeEntry(tw, manifestEntry, data); err != nil {
		return m, err
	}
	if err := tw.Close(); err != nil {
		return m, fmt.Errorf("store: backup: %w", err)
	}
	s.log.Info("backup written", slog.Any("streams", m.Streams))
	return m, nil
}

// snapshotStream copies one stream's snapshot into tw.
func (s *Store) snapshotStream(ctx context.Context, name string, consumers bool, tw *tar.Writer) (StreamManifest, error) {
	sm := StreamManifest{Name: name}
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return sm, classify("backup: subscribe", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Room for a whole window of chunks, so the server never sees this
	// client as slow.
	_ = sub.SetPendingLimits(-1, 4*snapshotWindow)

	req, _ := json.Marshal(map[string]any{
		"deliver_subject": inbox, "no_consumers": !consumers,
		"chunk_size": snapshotChunk, "window_size": snapshotWindow,
	})
	rctx, cancel := withDefaultTimeout(ctx)
	reply, err := s.nc.RequestWithContext(rctx, "$JS.API.STREAM.SNAPSHOT."+name, req)
	cancel()
	if err != nil {
		return sm, classify("backup: snapshot "+name, err)
	}
	var resp struct {
		apiError
		snapshotHeader
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return sm, fmt.Errorf("store: backup: decode snapshot response for %s: %w", name, err)
	}
	if resp.Error != nil {
		return sm, classify("backup: snapshot "+name, resp.Error)
	}
	st := resp.State
	sm.Messages, sm.Bytes, sm.FirstSeq, sm.LastSeq, sm.Consumers = st.Msgs, st.Bytes, st.FirstSeq, st.LastSeq, st.Consumers
	header, _ := json.Marshal(resp.snapshotHeader)
	if err := writeEntry(tw, name+"/"+streamEntry, header); err != nil {
		return sm, err
	}
	for {
		mctx, cancel := context.WithTimeout(ctx, snapshotIdle)
		msg, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			return sm, classify("backup: receive snapshot of "+name, err)
		}
		if len(msg.Data) == 0 {
			// The end: an empty message, with a status header when the
			// server reports a failure (204 or none means success).
			if code := msg.Header.Get("Status"); code != "" && code != "204" {
				return sm, fmt.Errorf("store: backup: snapshot of %s failed: %s %s", name, code, msg.Header.Get("Description"))
			}
			return sm, nil
		}
		sm.Chunks++
		if err := writeEntry(tw, fmt.Sprintf("%s/chunk-%06d", name, sm.Chunks), msg.Data); err != nil {
			return sm, err
		}
		if msg.Reply != "" {
			if err := msg.Respond(nil); err != nil {
				return sm, classify("backup: acknowledge snapshot chunk", err)
			}
		}
	}
}

func writeEntry(tw *tar.Writer, name string, data []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("store: backup: write %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("store: backup: write %s: %w", name, err)
	}
	return nil
}

// errIncomplete reports a backup that ends before its manifest.
var errIncomplete = errors.New("store: the backup ends before its manifest: it is incomplete (cut short while it was written); use another backup")

// ErrNotEmpty reports that Restore was pointed at a data directory that
// already holds a JetStream store.
var ErrNotEmpty = errors.New("store: data directory already holds a store")

// Restore brings a backup written by Backup into cfg.DataDir, which must
// not hold a JetStream store yet, using JetStream's restore API on an
// embedded server that runs only for the restore. The events stream comes
// back without a size cap: the next start applies the configured one.
func Restore(ctx context.Context, cfg Config, r io.Reader) (Manifest, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Manifest{}, err
	}
	if cfg.URL != "" {
		return Manifest{}, errors.New("store: restore works on an embedded data directory; for a cluster, use nats stream restore")
	}
	storeDir := filepath.Join(cfg.DataDir, "jetstream")
	if has, err := holdsStreams(storeDir); err != nil {
		return Manifest{}, fmt.Errorf("store: restore into %q: %w", cfg.DataDir, err)
	} else if has {
		return Manifest{}, fmt.Errorf("%w: %q; restore into a new, empty directory", ErrNotEmpty, cfg.DataDir)
	}
	// A log-state record left by an earlier store in this directory would
	// make the restored log look damaged at its first start.
	if err := os.Remove(filepath.Join(cfg.DataDir, logStateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("store: restore into %q: %w", cfg.DataDir, err)
	}
	s := &Store{log: cfg.Logger, closed: make(chan struct{})}
	if err := s.startEmbedded(&cfg); err != nil {
		return Manifest{}, err
	}
	if err := s.connect(cfg); err != nil {
		s.shutdownServer()
		return Manifest{}, err
	}
	m, err := s.restoreArchive(ctx, tar.NewReader(r))
	_ = s.Close()
	if err != nil {
		// All or nothing: the directory held no store before, so what
		// the failed restore left there goes, and a retry starts clean.
		if rmErr := os.RemoveAll(storeDir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("store: remove the partial restore in %q: %w", storeDir, rmErr))
		}
	}
	return m, err
}

// holdsStreams reports whether a JetStream store directory has any stream.
func holdsStreams(storeDir string) (bool, error) {
	found := false
	err := filepath.WalkDir(storeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && filepath.Base(filepath.Dir(path)) == "streams" {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found, err
}

// restoreArchive replays the archive's entries into the running server.
func (s *Store) restoreArchive(ctx context.Context, tr *tar.Reader) (Manifest, error) {
	var (
		current string // the stream being restored
		deliver string // where its chunks go
		m       Manifest
		done    = map[string]bool{}
	)
	finish := func() error {
		if current == "" {
			return nil
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // the server indexes the stream before it answers
		defer cancel()
		reply, err := s.nc.RequestWithContext(rctx, deliver, nil)
		if err != nil {
			return classify("restore: finish "+current, err)
		}
		var resp apiError
		if err := json.Unmarshal(reply.Data, &resp); err != nil {
			return fmt.Errorf("store: restore: decode answer for %s: %w", current, err)
		}
		if resp.Error != nil {
			return fmt.Errorf("store: restore %s: %w", current, resp.Error)
		}
		done[current], current = true, ""
		return nil
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return m, errIncomplete
		}
		if err != nil {
			return m, fmt.Errorf("store: restore: read backup: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(tr, 2*snapshotWindow))
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return m, errIncomplete
		}
		if err != nil {
			return m, fmt.Errorf("store: restore: read %s: %w", hdr.Name, err)
		}
		name, entry, _ := strings.Cut(hdr.Name, "/")
		switch {
		case hdr.Name == manifestEntry:
			if err := finish(); err != nil {
				return m, err
			}
			if err := json.Unmarshal(data, &m); err != nil || (m.Format != backupFormat && m.Format != backupFormat1) {
				return m, fmt.Errorf("store: restore: not a klingfan backup (manifest format %q)", m.Format)
			}
			for _, sm := range m.Streams {
				if !done[sm.Name] {
					return m, fmt.Errorf("store: restore: the backup lists stream %s but holds no data for it", sm.Name)
				}
			}
			s.log.Info("backup restored", slog.Any("streams", m.Streams))
			return m, nil
		case entry == streamEntry:
			if err := finish(); err != nil {
				return m, err
			}
			if deliver, err = s.beginRestore(ctx, name, data); err != nil {
				return m, err
			}
			current = name
		case strings.HasPrefix(entry, "chunk-") && name == current:
			rctx, cancel := withDefaultTimeout(ctx)
			_, err := s.nc.RequestWithContext(rctx, deliver, data)
			cancel()
			if err != nil {
				return m, classify("restore: send "+hdr.Name, err)
			}
		default:
			return m, fmt.Errorf("store: restore: unexpected entry %q in the backup", hdr.Name)
		}
	}
}

// beginRestore asks the server to restore the stream described by header
// and returns the subject its chunks go to.
func (s *Store) beginRestore(ctx context.Context, name string, header []byte) (string, error) {
	var req struct {
		Config map[string]any  `json:"config"`
		State  json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(header, &req); err != nil {
		return "", fmt.Errorf("store: restore: decode %s/%s: %w", name, streamEntry, err)
	}
	// The new disk may be smaller; Open and the owners set the
	// configured caps at the first start.
	req.Config["max_bytes"] = -1
	body, _ := json.Marshal(req)
	rctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	reply, err := s.nc.RequestWithContext(rctx, "$JS.API.STREAM.RESTORE."+name, body)
	if err != nil {
		return "", classify("restore: begin "+name, err)
	}
	var resp struct {
		apiError
		DeliverSubject string `json:"deliver_subject"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return "", fmt.Errorf("store: restore: decode answer for %s: %w", name, err)
	}
	if resp.Error != nil {
		return "", fmt.Errorf("store: restore %s: %w", name, resp.Error)
	}
	return resp.DeliverSubject, nil
}

// BackupFileMode is the mode of a backup file: it holds every event and
// the registrations (sealed only when KLINGFAN_SECRET_KEY is set).
const BackupFileMode os.FileMode = 0o600

// ReadManifest reads a backup through to its manifest, checking that it
// is whole, without restoring anything.
func ReadManifest(r io.Reader) (Manifest, error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Manifest{}, errIncomplete
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("store: read backup: %w", err)
		}
		if hdr.Name != manifestEntry {
			continue
		}
		var m Manifest
		data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return m, fmt.Errorf("store: read backup manifest: %w", err)
		}
		if err := json.Unmarshal(data, &m); err != nil || (m.Format != backupFormat && m.Format != backupFormat1) {
			return m, fmt.Errorf("store: not a klingfan backup (manifest format %q)", m.Format)
		}
		return m, nil
	}
}
