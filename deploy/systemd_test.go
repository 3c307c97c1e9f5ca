package deploy_test

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/config"
)

// readUnit parses a systemd unit into section → key → values (a key may
// repeat, as SystemCallFilter does).
func readUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot read %q", path, line)
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return unit
}

// The unit starts `klingfan serve` with flags the binary accepts, keeps the
// store in the state directory systemd creates for it (the only writable
// place under ProtectSystem=strict), and turns on the sandboxing options.
func TestSystemdUnit(t *testing.T) {
	unit := readUnit(t, filepath.Join("systemd", "klingfan.service"))
	svc := unit["Service"]
	one := func(k string) string {
		if len(svc[k]) != 1 {
			t.Errorf("[Service] %s: want exactly one value, have %q", k, svc[k])
			return ""
		}
		return svc[k][0]
	}
	args := strings.Fields(one("ExecStart"))
	if len(args) < 2 || args[0] != "/usr/local/bin/klingfan" || args[1] != "serve" {
		t.Fatalf("ExecStart %v: want /usr/local/bin/klingfan serve", args)
	}
	cfg, err := config.Parse(args[2:], func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatalf("klingfan would not start: %v", err)
	}
	if state := "/var/lib/" + one("StateDirectory"); filepath.Clean(cfg.DataDir) != state {
		t.Errorf("--data-dir %s is not the StateDirectory %s: under ProtectSystem=strict it would be read-only", cfg.DataDir, state)
	}
	if one("KillSignal") != "SIGTERM" {
		t.Error("klingfan shuts down gracefully on SIGTERM")
	}
	for k, want := range map[string]string{
		"DynamicUser":             "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictNamespaces":      "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"UMask":                   "0077",
		"StateDirectoryMode":      "0700",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	families := strings.Fields(one("RestrictAddressFamilies"))
	for _, f := range []string{"AF_INET", "AF_INET6"} {
		if !slices.Contains(families, f) {
			t.Errorf("RestrictAddressFamilies lacks %s: klingfan listens on TCP", f)
		}
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
		t.Error("SystemCallFilter should allow only @system-service")
	}
	if env := one("EnvironmentFile"); !strings.HasPrefix(strings.TrimPrefix(env, "-"), "/etc/klingfan/") {
		t.Errorf("EnvironmentFile %s: secrets belong in a root-only file under /etc/klingfan", env)
	}
}

// The example environment file sets only variables klingfan reads.
func TestSystemdEnvironmentExample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("systemd", "klingfan.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		k, _, ok := strings.Cut(line, "=")
		if !ok || strings.Contains(k, " ") {
			continue
		}
		if !knownEnv(k) {
			t.Errorf("%s is not a variable klingfan reads", k)
		}
	}
}
