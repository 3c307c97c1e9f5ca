// Package datadir owns klingfan's claim on its data directory: one process
// per directory, because two embedded JetStream servers writing the same
// file store acknowledge deliveries that the other then overwrites.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file inside the data directory that the running klingfan
// holds an exclusive advisory lock on, and that names its pid.
const LockFile = "klingfan.lock"

// ErrInUse reports that another live process holds the data directory.
var ErrInUse = errors.New("datadir: in use")

// InUseError names the directory and the process that holds it.
type InUseError struct {
	Dir string
	// PID is the holder's process id as it wrote it; 0 when unknown.
	PID int
}

func (e *InUseError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("data directory %s is in use by another klingfan", e.Dir)
	}
	return fmt.Sprintf("data directory %s is in use by another klingfan (pid %d)", e.Dir, e.PID)
}

// Unwrap makes errors.Is(err, ErrInUse) hold.
func (e *InUseError) Unwrap() error { return ErrInUse }

// Lock is a held claim on a data directory. The kernel releases it when the
// process ends, however it ends, so a crash never leaves a stale lock.
type Lock struct {
	f *os.File
}

// Acquire creates dir when missing and takes the exclusive lock on
// dir/LockFile without waiting. When another process holds it, Acquire
// returns an *InUseError at once and has changed nothing in dir. The lock is
// held until Release or the end of the process.
func Acquire(dir string) (*Lock, error) {
	// 0700: the data directory also holds the generated admin token.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s is not usable: %w", dir, unwrapPath(err))
	}
	path := filepath.Join(dir, LockFile)
	// No O_TRUNC: the pid inside belongs to the holder until we hold it.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory %s is not writable: %w", dir, unwrapPath(err))
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, &InUseError{Dir: dir, PID: readPID(path)}
		}
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, LockFile, err)
	}
	if err := writePID(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("data directory %s is not writable: %w", dir, unwrapPath(err))
	}
	return &Lock{f: f}, nil
}

// Release gives the directory up. The pid stays in the file: it is only
// believed while its writer holds the lock. Safe on a nil Lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the lock
	l.f = nil
	return err
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// readPID reads the holder's pid; 0 when the file does not say (the holder
// may be between taking the lock and writing it).
func readPID(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// unwrapPath drops the *fs.PathError's own path, which the callers' message
// already names, so the line reads "... is not writable: read-only file
// system".
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
