package app

import (
	"context"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/submit"
)

// setupCreate builds what CreateJob needs: the create-record bucket and
// the submitter, signing with the reconciler's credentials. Without
// credentials or --public-url it still answers, with FAILED_PRECONDITION
// saying which is missing.
func (s *server) setupCreate(ctx context.Context) error {
	kv, err := submit.OpenBucket(ctx, s.store)
	if err != nil {
		return err
	}
	publicURL := ""
	if s.cfg.PublicURLSet {
		publicURL = s.cfg.PublicURL
	}
	rc := s.cfg.Reconcile
	c := submit.Config{
		KV: kv, Append: s.outcomes, Jobs: s.jobs, Webhooks: s.registry,
		TaskEvent: taskEvent, PublicURL: publicURL,
		Budget:     submit.Budget{MaxInFlight: s.cfg.Create.MaxJobsInFlight, MaxUnitsPerDay: s.cfg.Create.MaxUnitsPerDay},
		Registerer: s.metrics, Now: s.now, Logger: s.log,
	}
	if s.kling != nil {
		c.API = s.kling
		c.Credential = credentialName(rc.APIKey != "", rc.AccessKey)
	}
	s.submitter = submit.New(c)
	if s.kling != nil && !s.cfg.PublicURLSet {
		s.log.Info("Kling credentials are set but --public-url is not: CreateJob is off until --public-url (KLINGFAN_PUBLIC_URL) says where Kling reaches this server's ingest URLs")
	}
	return nil
}

// credentialName names the configured credentials for error messages: the
// variables they come from and the access key (an identifier, not a
// secret), never a secret.
func credentialName(apiKey bool, accessKey string) string {
	if apiKey {
		return "KLING_API_KEY"
	}
	return "KLING_ACCESS_KEY=" + accessKey + " with KLING_SECRET_KEY"
}

// taskEvent normalizes a task as Kling's API returns it, like a callback of
// its shape; a task whose details do not normalize still gives an event
// with what identifies it.
func taskEvent(raw []byte) (*gatewayv1.Event, error) {
	ev, err := normalize.Parse(raw)
	if err != nil {
		return normalize.Identify(raw)
	}
	return ev, nil
}
