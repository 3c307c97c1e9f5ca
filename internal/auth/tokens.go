package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/term"

	"github.com/klingfan/klingfan/internal/keyfile"
)

// tokenNamePattern is what a token name looks like: it appears in logs and
// in PERMISSION_DENIED messages, so it stays short and plain.
var tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// LoadTokensFile reads a tokens file; see ParseTokens for the format.
// Errors name the file and the line.
func LoadTokensFile(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: tokens file: %w", err)
	}
	defer f.Close()
	return ParseTokens(f, path)
}

// ParseTokens reads named tokens, one per line:
//
//	# name      scope      token
//	ci-deployer admin      3q2x...
//	renderer    subscribe  Jx9f...
//
// Fields are separated by spaces or tabs. Blank lines and lines starting
// with # are ignored. Names match [A-Za-z0-9][A-Za-z0-9._-]{0,63} and are
// unique; scopes are "admin" or "subscribe"; tokens are printable ASCII
// without spaces, at least 16 characters, and unique. file names the source
// in errors, which carry the line number and never a token.
func ParseTokens(r io.Reader, file string) ([]Token, error) {
	var (
		out    []Token
		byName = map[string]int{}
		byHash = map[[32]byte]Token{}
		errs   []error
	)
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: "+format, append([]any{file, line}, args...)...))
		}
		fields := strings.Fields(text)
		if len(fields) != 3 {
			fail("want 3 fields \"name scope token\", got %d", len(fields))
			continue
		}
		name, scope, value := fields[0], Scope(fields[1]), fields[2]
		if !tokenNamePattern.MatchString(name) {
			fail("token name %q: want letters, digits, '.', '_' or '-', at most 64", name)
			continue
		}
		if prev, dup := byName[name]; dup {
			fail("duplicate token name %q (first on line %d)", name, prev)
			continue
		}
		byName[name] = line
		if scope != ScopeAdmin && scope != ScopeSubscribe {
			fail("token %q: unknown scope %q: want %q or %q", name, scope, ScopeAdmin, ScopeSubscribe)
			continue
		}
		if err := checkTokenValue(value); err != nil {
			fail("token %q: %v", name, err)
			continue
		}
		t := newToken(name, scope, value, line)
		if prev, dup := byHash[t.digest]; dup {
			fail("token %q has the same value as token %q (line %d)", name, prev.Name, prev.Line)
			continue
		}
		byHash[t.digest] = t
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", file, err))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("auth: tokens file: %w", errors.Join(errs...))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("auth: tokens file %s defines no tokens", file)
	}
	return out, nil
}

// AdminTokenFile is the name of the generated admin token's file under the
// data directory.
const AdminTokenFile = "admin-token"

// generatedAdminToken returns the admin token kept in dataDir, creating it
// on first start and printing it once to out. An existing file that group
// or others may access is refused: the token must be treated as leaked.
func generatedAdminToken(dataDir string, out io.Writer, log *slog.Logger) (string, error) {
	if dataDir == "" {
		return "", errors.New("auth: no API token configured: set KLINGFAN_ADMIN_TOKEN or --tokens-file (there is no --data-dir to keep a generated token in)")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("auth: create data directory for the admin token: %w", err)
	}
	path := filepath.Join(dataDir, AdminTokenFile)
	tok, created, err := keyfile.Load(path, "admin token", checkTokenValue)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if !created {
		log.Info("using the admin token kept in the data directory", "file", path)
		return tok, nil
	}
	if out != nil {
		// The token itself only to a terminal: stdout of a container ends
		// in its logs, where anyone who reads them would find it.
		if isTerminal(out) {
			fmt.Fprintf(out, "Admin token (also in %s): %s\n", path, tok)
		} else {
			fmt.Fprintf(out, "Admin token generated in %s (read it from there; it is shown only on a terminal)\n", path)
		}
	}
	log.Info("generated an admin token", "file", path)
	return tok, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
