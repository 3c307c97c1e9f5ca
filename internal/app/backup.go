package app

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/certpool"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/datadir"
	"github.com/klingfan/klingfan/internal/store"
)

// BackupCommand runs `klingfan backup --to FILE`: it asks a running server
// for a backup (AdminService.Backup) and writes it to FILE (mode 0600),
// through a temporary file renamed only when the backup is complete.
func BackupCommand(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	fs := flag.NewFlagSet("klingfan backup", flag.ContinueOnError)
	fs.SetOutput(out)
	to := fs.String("to", "", "file to write the backup to (required)")
	server := fs.String("server", "localhost:9090", "gRPC address (host:port) of the running klingfan")
	dataDir := fs.String("data-dir", "./data", "the server's data directory, to read the generated admin token from when KLINGFAN_ADMIN_TOKEN is unset")
	var caFile, certFile, keyFile string
	// klingctl's names (--ca, --cert, --key) and the --tls-* names both
	// work, so an operator's muscle memory from either tool is right.
	for _, name := range []string{"tls-ca", "ca"} {
		fs.StringVar(&caFile, name, "", "CA file that verifies the server's certificate (connects over TLS)")
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
		return errors.New("backup: usage: klingfan backup --to FILE [--server HOST:PORT] [--tls-ca FILE] [--cert FILE --key FILE]")
	}
	if strings.Contains(*server, "://") {
		return fmt.Errorf("backup: --server %q: klingfan backup talks gRPC; give the gRPC address (host:port, default localhost:9090)", *server)
	}
	token, err := adminToken(lookup, *dataDir)
	if err != nil {
		return err
	}
	opts, err := backupDialOptions(caFile, certFile, keyFile)
	if err != nil {
		return err
	}
	c, err := client.Dial(ctx, *server, append(opts, client.WithToken(token))...)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer c.Close()
	stream, err := gatewayv1.NewAdminServiceClient(c.Conn()).Backup(ctx, &gatewayv1.BackupRequest{})
	if err != nil {
		return fmt.Errorf("backup: %w", certHint(err, caFile, certFile))
	}
	tmp, err := os.CreateTemp(filepath.Dir(*to), ".klingfan-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	n, err := receiveBackup(stream, tmp)
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
		return fmt.Errorf("backup: %w", certHint(err, caFile, certFile))
	}
	if err := os.Rename(tmp.Name(), *to); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(out, "backup written to %s (%d bytes)\n", *to, n)
	return nil
}

// certHint names the flags that present a client certificate when a TLS
// connection without one failed: a server started with --tls-client-ca
// ends such a handshake, and gRPC reports only a broken connection.
func certHint(err error, caFile, certFile string) error {
	if caFile != "" && certFile == "" && status.Code(err) == codes.Unavailable {
		return fmt.Errorf("%w (a server started with --tls-client-ca needs a client certificate: --cert and --key)", err)
	}
	return err
}

// receiveBackup writes the stream's chunks to w until the server ends it.
func receiveBackup(stream grpc.ServerStreamingClient[gatewayv1.BackupResponse], w io.Writer) (int64, error) {
	var n int64
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		k, err := w.Write(resp.GetChunk())
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
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

// backupDialOptions returns how `klingfan backup` connects: plaintext to
// a local server, or TLS when a CA or a client certificate is given.
func backupDialOptions(caFile, certFile, keyFile string) ([]client.Option, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return []client.Option{client.WithInsecure()}, nil
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
	return []client.Option{client.WithTLS(cfg)}, nil
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
