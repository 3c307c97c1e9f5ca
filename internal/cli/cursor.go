package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cursorFile persists the last sequence listen handled, so the next run
// resumes after it. The file holds the sequence in decimal and a newline.
type cursorFile struct {
	path string
}

// load returns the stored sequence; ok is false when the file does not
// exist or is empty (a first run).
func (f cursorFile) load() (seq uint64, ok bool, err error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cursor file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, false, nil
	}
	seq, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cursor file %s: %q is not a sequence number", f.path, s)
	}
	return seq, true, nil
}

// store replaces the file atomically: a crash leaves either the old or the
// new sequence, never a torn write. The temporary file lives in the same
// directory so the rename cannot cross file systems, and is synced before
// the rename so the new name never points at unwritten data.
func (f cursorFile) store(seq uint64) error {
	dir, base := filepath.Split(f.path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.WriteString(strconv.FormatUint(seq, 10) + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("cursor file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cursor file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	// Make the rename itself durable. Some file systems cannot sync a
	// directory; the rename has still happened, so that is not an error.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
