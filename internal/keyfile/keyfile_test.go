package keyfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/keyfile"
)

func atLeast16(s string) error {
	if len(s) < 16 {
		return errors.New("too short")
	}
	return nil
}

// TestLoad: the first call creates an owner-only file, later calls read
// the same secret, and a kept file that others may read or that holds a
// bad value is refused, not replaced.
func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		kept    string      // file content before Load; "" for no file
		mode    os.FileMode // of the kept file
		wantErr string      // "" for success
	}{
		{name: "no file: generated", kept: ""},
		{name: "kept file", kept: "0123456789abcdef0123\n", mode: 0o600},
		{name: "kept file others may read", kept: "0123456789abcdef0123\n", mode: 0o644, wantErr: "others may have read it"},
		{name: "kept value the check refuses", kept: "short\n", mode: 0o600, wantErr: "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if tt.kept != "" {
				if err := os.WriteFile(path, []byte(tt.kept), tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			got, created, err := keyfile.Load(path, "test secret", atLeast16)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "test secret") {
					t.Fatalf("err = %v, want one naming the secret and %q", err, tt.wantErr)
				}
				if data, _ := os.ReadFile(path); string(data) != tt.kept {
					t.Fatalf("the refused file was changed to %q", data)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if created != (tt.kept == "") {
				t.Errorf("created = %v with kept %q", created, tt.kept)
			}
			if tt.kept != "" && got != strings.TrimSpace(tt.kept) {
				t.Errorf("got %q, want the kept %q", got, tt.kept)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
			}
			again, created, err := keyfile.Load(path, "test secret", atLeast16)
			if err != nil || created || again != got {
				t.Errorf("second Load: %q, created %v, %v; want %q, false, nil", again, created, err, got)
			}
		})
	}
}
