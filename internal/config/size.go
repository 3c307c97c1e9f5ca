package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Retention policies: what the event log does when it reaches its size cap.
const (
	// RetentionDiscardOldest drops the oldest events to make room, so ingest
	// never stops; subscribers resuming from a dropped sequence get
	// OUT_OF_RANGE naming the earliest one.
	RetentionDiscardOldest = "discard-oldest"
	// RetentionRefuse keeps every stored event and answers new deliveries
	// 503 until space comes back, so Kling retries them later.
	RetentionRefuse = "refuse"
)

// minStoreBytes is the smallest store budget that holds the registrations
// and a few events; smaller values are almost certainly a typo.
const minStoreBytes = 1 << 20

// validateStorage checks the storage budget flags.
func (c *Config) validateStorage() []error {
	var errs []error
	if c.RetentionPolicy != RetentionDiscardOldest && c.RetentionPolicy != RetentionRefuse {
		errs = append(errs, fmt.Errorf("--retention-policy %q: want %s or %s", c.RetentionPolicy, RetentionDiscardOldest, RetentionRefuse))
	}
	if c.MaxStoreBytes != 0 && c.MaxStoreBytes < minStoreBytes {
		errs = append(errs, fmt.Errorf("--max-store-bytes %d: must be at least 1MiB", c.MaxStoreBytes))
	}
	if c.MaxStoreBytes != 0 && c.NATSURL != "" {
		errs = append(errs, errors.New("--max-store-bytes sizes the embedded server's store; with --nats-url use --retention-bytes (the cluster's own max_file_store applies)"))
	}
	if c.RetentionBytes < 0 || (c.RetentionBytes != 0 && c.RetentionBytes < 64<<10) {
		errs = append(errs, fmt.Errorf("--retention-bytes %d: must be at least 64KiB", c.RetentionBytes))
	}
	if c.RetentionBytes != 0 && c.MaxStoreBytes != 0 && c.RetentionBytes > c.MaxStoreBytes {
		errs = append(errs, fmt.Errorf("--retention-bytes %d exceeds --max-store-bytes %d", c.RetentionBytes, c.MaxStoreBytes))
	}
	return errs
}

// sizeFlag is a byte count given as a plain number or with a binary (KiB,
// MiB, GiB, TiB) or decimal (KB, MB, GB, TB) unit.
type sizeFlag struct{ p *int64 }

func (f sizeFlag) String() string {
	if f.p == nil || *f.p == 0 {
		return "0"
	}
	return strconv.FormatInt(*f.p, 10)
}

func (f sizeFlag) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	*f.p = n
	return nil
}

// ParseSize reads a byte count such as "512MiB", "2GB" or "1048576".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToLower(t), strings.ToLower(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a byte count such as 512MiB, 20GiB or 1048576", s)
	}
	return n * mult, nil
}
