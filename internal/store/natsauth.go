package store

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSTokenFile is the name, under the data directory, of the token that
// clients of the embedded NATS server must present when --nats-listen opens
// it to the network. It is generated on the first such start and kept, so
// a debugging session's nats CLI context survives restarts.
const NATSTokenFile = "nats-token"

// natsListenAddr parses --nats-listen. A bare port or ":port" listens on
// loopback only: the log holds every event and registration, so reaching
// it from other machines must be asked for by naming a host.
func natsListenAddr(listen string) (host string, port int, err error) {
	hostPart, portStr := "", listen
	if strings.Contains(listen, ":") {
		hostPart, portStr, err = net.SplitHostPort(listen)
		if err != nil {
			return "", 0, fmt.Errorf("store: NATS listen address %q: %w", listen, err)
		}
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("store: NATS listen address %q: invalid port %q", listen, portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default 4222.
	}
	if hostPart == "" {
		hostPart = "127.0.0.1"
	}
	return hostPart, port, nil
}

// natsClientToken returns the token kept in dataDir for the embedded
// server's clients, creating it (mode 0600) on first use. A file that group
// or others may read is refused, since the token must then be treated as
// leaked.
func natsClientToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, NATSTokenFile)
	tok, err := readNATSToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	tok = base64.RawURLEncoding.EncodeToString(raw)
	// O_EXCL: if another process created it meanwhile, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readNATSToken(path)
	}
	if err != nil {
		return "", fmt.Errorf("store: write NATS client token: %w", err)
	}
	_, werr := f.WriteString(tok + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("store: write NATS client token %s: %w", path, err)
	}
	return tok, nil
}

// readNATSToken reads a kept token, refusing one that group or others may
// read and one too short to be a secret.
func readNATSToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("store: NATS client token: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("store: NATS client token file %s has mode %04o: others may have read it; run `chmod 600 %s` if it is safe, or delete it to generate a new token", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("store: NATS client token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < 16 {
		return "", fmt.Errorf("store: NATS client token file %s holds fewer than 16 characters; delete it to generate a new token", path)
	}
	return tok, nil
}

// NATSClientURL returns the address external NATS clients reach the
// embedded server on, or "" when --nats-listen is off or the log is
// external. Clients need the token in NATSTokenFile.
func (s *Store) NATSClientURL() string {
	if s.ns == nil || s.natsToken == "" {
		return ""
	}
	return s.ns.ClientURL()
}
