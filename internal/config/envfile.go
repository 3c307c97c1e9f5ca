package config

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// envFileFlag names the environment file: KEY=VALUE lines (blank lines and
// # comments ignored, values optionally quoted), the format of systemd's
// EnvironmentFile and docker's --env-file. klingfan reads it at start and
// again on SIGHUP, which is how the storage limits change without a
// restart. Variables set in the real environment win over the file.
const envFileFlag = "env-file"

// withEnvFile returns lookup extended by the environment file named on the
// command line (--env-file) or by KLINGFAN_ENV_FILE, if any.
func withEnvFile(args []string, lookup func(string) (string, bool)) (func(string) (string, bool), error) {
	path, _ := lookup(EnvName(envFileFlag))
	for i, a := range args {
		switch {
		case a == "--"+envFileFlag || a == "-"+envFileFlag:
			if i+1 < len(args) {
				path = args[i+1]
			}
		case strings.HasPrefix(a, "--"+envFileFlag+"=") || strings.HasPrefix(a, "-"+envFileFlag+"="):
			_, path, _ = strings.Cut(a, "=")
		}
	}
	if path == "" {
		return lookup, nil
	}
	vars, err := readEnvFile(path)
	if err != nil {
		return nil, err
	}
	return func(name string) (string, bool) {
		if v, ok := lookup(name); ok {
			return v, true
		}
		v, ok := vars[name]
		return v, ok
	}, nil
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: --env-file: %w", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || strings.TrimSpace(key) == "" {
			return nil, fmt.Errorf("config: --env-file %s line %d: want KEY=VALUE", path, n)
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		vars[strings.TrimSpace(key)] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config: --env-file %s: %w", path, err)
	}
	return vars, nil
}
