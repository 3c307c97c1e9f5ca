package app_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// smallDisk mounts a tmpfs of size under the test's temporary directory and
// returns its path. It needs root; with CI=true it runs as root and must.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but not root: this test needs root to mount a small tmpfs")
		}
		t.Skip("needs root to mount a small tmpfs (CI runs it as root)")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs: %v: %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// A store that holds data starts whatever its budget has become, lowering
// its caps (never below what is stored) with one warning that names the old
// cap, the new one and the flag, keeps every event and takes deliveries.
func TestRestartWithASmallerBudgetStarts(t *testing.T) {
	for _, tc := range []struct {
		name string
		// disk returns the data directory; between is run while the
		// server is stopped; restart is the flag of the second start.
		disk    func(t *testing.T) (dir string, between func(t *testing.T))
		events  int
		restart int64 // --max-store-bytes at the second start; 0 derives it
		warning string
	}{
		{
			// Another program took 380 MiB of a 512 MiB disk.
			name: "disk shrank",
			disk: func(t *testing.T) (string, func(t *testing.T)) {
				mnt := smallDisk(t, "512m")
				return filepath.Join(mnt, "data"), func(t *testing.T) {
					if out, err := exec.Command("fallocate", "-l", "380MiB", filepath.Join(mnt, "other-program")).CombinedOutput(); err != nil {
						t.Fatalf("fallocate: %v: %s", err, out)
					}
				}
			},
			events:  20,
			warning: "store caps lowered: the disk has less free space",
		},
		{
			name:    "lower --max-store-bytes",
			disk:    func(t *testing.T) (string, func(t *testing.T)) { return t.TempDir(), func(*testing.T) {} },
			events:  20,
			restart: 64 << 20,
			warning: "store caps lowered to the smaller --max-store-bytes",
		},
		{
			// About 2.5 MiB stored, 1 MiB asked for: clamped to what is
			// stored, documented in the README.
			name:    "--max-store-bytes below what is stored",
			disk:    func(t *testing.T) (string, func(t *testing.T)) { return t.TempDir(), func(*testing.T) {} },
			events:  300,
			restart: 1 << 20,
			warning: "store caps lowered to what is stored, no lower",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, between := tc.disk(t)
			env := apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", storageSecret)
			srv := apptest.Start(t, dir, env)
			var stored []string
			for i := range tc.events {
				job := fmt.Sprintf("before-%d", i)
				if code, _ := postDelivery(t, srv, job); code != 200 {
					t.Fatalf("delivery %s: %d", job, code)
				}
				stored = append(stored, job)
			}
			srv.Stop(t)
			between(t)

			var logs apptest.SyncBuffer
			srv = apptest.Start(t, dir, env, apptest.WithLogger(newTextLogger(&logs)),
				apptest.WithConfig(func(c *config.Config) { c.MaxStoreBytes = tc.restart }))
			if code, _ := postDelivery(t, srv, "after"); code != 200 {
				t.Fatalf("delivery after the restart: %d\n%s", code, logs.String())
			}
			stored = append(stored, "after")
			got := listJobs(t, srv)
			for _, job := range stored {
				if !slices.Contains(got, job) {
					t.Errorf("%s is missing after the restart", job)
				}
			}
			var warnings []string
			for line := range strings.Lines(logs.String()) {
				if strings.Contains(line, "level=WARN") && !strings.Contains(line, "registration secrets are stored unencrypted") {
					warnings = append(warnings, line)
				}
			}
			if len(warnings) != 1 {
				t.Fatalf("want one warning, got %d:\n%s", len(warnings), strings.Join(warnings, ""))
			}
			w := warnings[0]
			for _, want := range []string{tc.warning, "old_cap=", "new_cap=", "flag=--max-store-bytes"} {
				if !strings.Contains(w, want) {
					t.Errorf("the warning lacks %q: %s", want, w)
				}
			}
			t.Log(w)
		})
	}
}
