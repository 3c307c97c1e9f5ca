package store

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/klingfan/klingfan/internal/keyfile"
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
	tok, _, err := keyfile.Load(filepath.Join(dataDir, NATSTokenFile), "NATS client token", func(tok string) error {
		if len(tok) < 16 {
			return errors.New("holds fewer than 16 characters")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
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
