package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrDamaged reports a store that exists on disk but that JetStream could
// not open. Open fails with it rather than create an empty log over the
// old one.
var ErrDamaged = errors.New("store: damaged")

// streamDir is where the embedded server keeps a stream of the default
// account.
func streamDir(dataDir, stream string) string {
	return filepath.Join(dataDir, "jetstream", "jetstream", "$G", "streams", stream)
}

// checkOpened runs after the embedded server started and before the
// assets are ensured: a stream whose directory exists but that the server
// did not load is damaged beyond what it repairs by itself, and creating
// it anew would hide that every event in it is gone.
func (s *Store) checkOpened(ctx context.Context, cfg Config) error {
	if s.ns == nil {
		return nil
	}
	for _, name := range []string{StreamName, kvStreamName} {
		dir := streamDir(cfg.DataDir, name)
		if _, err := os.Stat(dir); err != nil {
			continue // never created: a new store
		}
		_, err := s.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%w: JetStream could not open %s in %q (the server's log above says why). "+
				"Nothing was changed. Restore the last backup into a new directory (klingfan restore --from FILE --data-dir NEW) "+
				"and start with --data-dir NEW, or move %q aside to start with an empty store",
				ErrDamaged, name, dir, cfg.DataDir)
		}
		if err != nil {
			return classify("look up stream "+name, err)
		}
	}
	return nil
}

// logStateFile, under the data directory, records the log's last sequence
// as klingfan last saw it: every space check and at a clean shutdown. After
// a power loss JetStream rebuilds a block cut short without a word; the
// record is how klingfan knows that events it had acknowledged are gone.
const logStateFile = "log-state.json"

type logState struct {
	Stream   string    `json:"stream"`
	LastSeq  uint64    `json:"last_sequence"`
	Recorded time.Time `json:"recorded_at"`
}

// recordLogState writes lastSeq to the state file when it moved, through a
// synced temporary file so the record itself survives a crash whole.
func (s *Store) recordLogState(dataDir string, lastSeq uint64) {
	if s.ns == nil || dataDir == "" || lastSeq == s.recordedSeq.Load() {
		return
	}
	data, _ := json.Marshal(logState{Stream: StreamName, LastSeq: lastSeq, Recorded: time.Now().UTC()})
	path := filepath.Join(dataDir, logStateFile)
	tmp, err := os.CreateTemp(dataDir, ".log-state-*")
	if err == nil {
		_, err = tmp.Write(data)
		if err == nil {
			err = tmp.Sync()
		}
		err = errors.Join(err, tmp.Close())
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}
	if err != nil {
		s.log.Debug("could not record the log state", slog.Any("err", err))
		return
	}
	s.recordedSeq.Store(lastSeq)
}

// reportLost says, once at start-up, which acknowledged events did not
// survive (a block cut short by a power loss), so an operator knows what to
// ask Kling to resend; the rest is served. It compares the recovered log
// with the recorded state and with what JetStream itself reports lost.
func (s *Store) reportLost(ctx context.Context, dataDir string) {
	if s.ns == nil {
		return
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return
	}
	var lost []uint64
	var lostBytes uint64
	if l := info.State.Lost; l != nil {
		lost, lostBytes = slices.Clone(l.Msgs), l.Bytes
	}
	if raw, err := os.ReadFile(filepath.Join(dataDir, logStateFile)); err == nil {
		var rec logState
		if json.Unmarshal(raw, &rec) == nil && rec.Stream == StreamName && rec.LastSeq > info.State.LastSeq {
			for seq := info.State.LastSeq + 1; seq <= rec.LastSeq && len(lost) < 1_000_000; seq++ {
				lost = append(lost, seq)
			}
		}
	}
	s.recordedSeq.Store(0)
	s.recordLogState(dataDir, info.State.LastSeq)
	if len(lost) == 0 {
		return
	}
	slices.Sort(lost)
	lost = slices.Compact(lost)
	s.log.Error("the event log was damaged (a file cut short, as after a power loss): these acknowledged events are lost, the rest is served; new events continue after the last one kept",
		slog.String("data_dir", dataDir),
		slog.Int("lost_events", len(lost)),
		slog.String("lost_sequences", seqRanges(lost)),
		slog.Uint64("lost_bytes", lostBytes),
		slog.Uint64("first_sequence", info.State.FirstSeq),
		slog.Uint64("last_sequence", info.State.LastSeq))
}

// seqRanges writes sorted sequences compactly: "5-9,12".
func seqRanges(seqs []uint64) string {
	var out []byte
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if len(out) > 0 {
			out = append(out, ',')
		}
		out = fmt.Appendf(out, "%d", seqs[i])
		if j > i {
			out = fmt.Appendf(out, "-%d", seqs[j])
		}
		i = j + 1
	}
	return string(out)
}
