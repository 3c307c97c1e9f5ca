package datadir_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klingfan/klingfan/internal/datadir"
)

// A held directory refuses a second claim, naming the holder, until the
// holder releases it; the directory is created when missing.
func TestAcquireExcludesUntilRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	first, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = datadir.Acquire(dir)
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() || !errors.Is(err, datadir.ErrInUse) {
		t.Fatalf("second Acquire: %v, want an InUseError naming pid %d", err, os.Getpid())
	}
	if want := fmt.Sprintf("data directory %s is in use by another klingfan (pid %d)", dir, os.Getpid()); err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	_ = again.Release()
}
