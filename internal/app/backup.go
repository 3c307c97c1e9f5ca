package app

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"

	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/certpool"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/datadir"
	"github.com/klingfan/klingfan/internal/store"
)

// BackupPath serves a backup of the running server to an admin token: a
// tar stream of JetStream snapshots (see store.Backup).
const BackupPath = "/v1/backup"

// backupMethod is the pseudo gRPC method the backup endpoint authorizes
// as: it needs the admin scope like every management call.
const backupMethod = "/kling.gateway.v1.Admin/Backup"

// serveBackup streams a backup to an admin. Once the first byte is sent
// the status cannot change: a backup cut short lacks its manifest, and
// restore refuses it.
func (s *server) serveBackup(gateway *runtime.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := metadata.NewIncomingContext(r.Context(), metadata.MD{"authorization": r.Header.Values("Authorization")})
		if _, err := s.authn.Authorize(ctx, backupMethod); err != nil {
			_, out := runtime.MarshalerForRequest(gateway, r)
			runtime.HTTPError(r.Context(), gateway, out, w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set("Content-Disposition", `attachment; filename="klingfan-backup.tar"`)
		start := time.Now()
		m, err := s.store.Backup(r.Context(), w)
		if err != nil {
			s.log.Warn("backup failed; the client got an incomplete archive that restore refuses", "error", err)
			return
		}
		s.log.Info("backup served", "duration", time.Since(start).Round(time.Millisecond), "streams", len(m.Streams))
	})
}

// BackupCommand runs `klingfan backup --to FILE`: it asks a running server
// for a backup and writes it to FILE (mode 0600), through a temporary file
// renamed only when the backup is complete.
func BackupCommand(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	fs := flag.NewFlagSet("klingfan backup", flag.ContinueOnError)
	fs.SetOutput(out)
	to := fs.String("to", "", "file to write the backup to (required)")
	server := fs.String("server", "http://localhost:8080", "base URL of the running klingfan's HTTP listener")
	dataDir := fs.String("data-dir", "./data", "the server's data directory, to read the generated admin token from when KLINGFAN_ADMIN_TOKEN is unset")
	var caFile, certFile, keyFile string
	// klingctl's names (--ca, --cert, --key) and the --tls-* names both
	// work, so an operator's muscle memory from either tool is right.
	for _, name := range []string{"tls-ca", "ca"} {
		fs.StringVar(&caFile, name, "", "CA file that verifies the server's certificate (https)")
	}
	for _, name := range []string{"cert", "tls-cert"} {
		fs.StringVar(&certFile, name, "", "PEM client certificate, for a server started with --tls-client-ca (with --key)")
	}
	for _, name := range []string{"key", "tls-key"} {
		fs.StringVar(&keyFile, name, "", "PEM private key of --cert")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		return errors.New("backup: usage: klingfan backup --to FILE [--server URL] [--tls-ca FILE] [--cert FILE --key FILE]")
	}
	token, err := adminToken(lookup, *dataDir)
	if err != nil {
		return err
	}
	client, err := backupClient(caFile, certFile, keyFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*server, "/")+BackupPath, nil)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("backup: the server answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	tmp, err := os.CreateTemp(filepath.Dir(*to), ".klingfan-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), store.BackupFileMode)
	}
	if err == nil {
		err = checkBackup(tmp.Name())
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), *to); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(out, "backup written to %s (%d bytes)\n", *to, n)
	return nil
}

// checkBackup proves the archive ends with its manifest, so a transfer cut
// short never replaces a good file.
func checkBackup(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := store.ReadManifest(f); err != nil {
		return err
	}
	return nil
}

// adminToken finds the admin token: KLINGFAN_ADMIN_TOKEN, else the file
// the server generated under its data directory.
func adminToken(lookup func(string) (string, bool), dataDir string) (string, error) {
	if tok, ok := lookup("KLINGFAN_ADMIN_TOKEN"); ok && tok != "" {
		return tok, nil
	}
	raw, err := os.ReadFile(filepath.Join(dataDir, auth.AdminTokenFile))
	if err != nil {
		return "", fmt.Errorf("backup: no admin token: set KLINGFAN_ADMIN_TOKEN or point --data-dir at the server's data directory (%w)", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// backupClient returns the HTTP client of `klingfan backup`: it trusts
// caFile when given and presents the client certificate a server started
// with --tls-client-ca requires for /v1.
func backupClient(caFile, certFile, keyFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" && certFile == "" && keyFile == "" {
		return &http.Client{Transport: tr}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := certpool.Load("backup: --tls-ca", caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("backup: --cert and --key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("backup: --cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}

// RestoreCommand runs `klingfan restore --from FILE --data-dir DIR`: it
// brings a backup back into a new, empty data directory. Start klingfan on
// DIR afterwards with the same KLINGFAN_SECRET_KEY as the backed-up server,
// or the sealed registration secrets cannot be opened.
func RestoreCommand(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("klingfan restore", flag.ContinueOnError)
	fs.SetOutput(out)
	from := fs.String("from", "", "backup file written by klingfan backup (required)")
	dataDir := fs.String("data-dir", "", "new, empty data directory to restore into (required)")
	level := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *dataDir == "" || fs.NArg() > 0 {
		return errors.New("restore: usage: klingfan restore --from FILE --data-dir DIR")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("restore: --log-level %q: %w", *level, err)
	}
	f, err := os.Open(*from)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	// A klingfan serving the directory, or a second restore, must not meet
	// this one in the store.
	lock, err := datadir.Acquire(*dataDir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer func() { _ = lock.Release() }()
	log := NewLogger(config.Config{LogLevel: lvl}, os.Stderr)
	m, err := store.Restore(ctx, store.Config{DataDir: *dataDir, Logger: log}, f)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, s := range m.Streams {
		fmt.Fprintf(out, "restored %s: %d messages (sequences %d to %d)\n", s.Name, s.Messages, s.FirstSeq, s.LastSeq)
	}
	fmt.Fprintf(out, "backup of %s restored into %s; start klingfan with --data-dir %s and the same KLINGFAN_SECRET_KEY\n",
		m.CreatedAt.Format(time.RFC3339), *dataDir, *dataDir)
	return nil
}
