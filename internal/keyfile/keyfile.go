// Package keyfile keeps a generated secret in a file only its owner may
// read: the admin token and the embedded NATS server's client token live
// in the data directory this way, so a restart finds the same secret.
package keyfile

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// Load returns the secret kept at path, creating the file (mode 0600) with
// 32 random bytes, base64url-encoded, when there is none; created reports
// that it did. what names the secret in errors. A kept file that group or
// others may access is refused, since the secret must then be treated as
// leaked, and so is a kept value that check rejects. The directory must
// exist.
func Load(path, what string, check func(string) error) (secret string, created bool, err error) {
	secret, err = read(path, what, check)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, false, err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	secret = base64.RawURLEncoding.EncodeToString(raw)
	// O_EXCL: if another process created it meanwhile, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		secret, err = read(path, what, check)
		return secret, false, err
	}
	if err != nil {
		return "", false, fmt.Errorf("write %s: %w", what, err)
	}
	_, werr := f.WriteString(secret + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return "", false, fmt.Errorf("write %s %s: %w", what, path, err)
	}
	return secret, true, nil
}

// read reads a kept secret. A missing file is fs.ErrNotExist, unwrapped.
func read(path, what string, check func(string) error) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s file %s has mode %04o: others may have read it; run `chmod 600 %s` if it is safe, or delete it to generate a new one", what, path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	secret := strings.TrimSpace(string(data))
	if err := check(secret); err != nil {
		return "", fmt.Errorf("%s file %s: %w; delete it to generate a new one", what, path, err)
	}
	return secret, nil
}
