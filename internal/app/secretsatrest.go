package app

import (
	"context"
	"fmt"
	"strings"
)

// checkSecretsAtRest seals the secrets of registrations stored before
// KLINGFAN_SECRET_KEY was set (or with an older key), and refuses to start
// when a registration cannot be opened: with a dropped or wrong key it
// would silently vanish, and Kling, answered 404, may never retry.
func (s *server) checkSecretsAtRest(ctx context.Context) error {
	sealed, err := s.registry.SealAll(ctx)
	if len(sealed) > 0 {
		s.log.Info("sealed registration secrets stored unencrypted or with an older key", "webhooks", strings.Join(sealed, ","))
	}
	if err != nil {
		return err
	}
	return unreadableError(s.registry.Unreadable())
}

// unreadableError names the registrations that cannot be opened, or is nil.
func unreadableError(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return fmt.Errorf("app: registrations %s cannot be opened: their secrets are sealed with a key KLINGFAN_SECRET_KEY does not hold (or are corrupt); restore the key (old keys may follow the new one, comma-separated)",
		strings.Join(ids, ", "))
}
