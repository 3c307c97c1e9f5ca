package store

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// syncedKV is the registrations bucket whose writes return only once they
// are on disk: a secret handed out by CreateWebhook or a rotation must
// survive a power loss, or the deliveries Kling signs with it are refused.
type syncedKV struct {
	jetstream.KeyValue
	commit *groupCommit
}

func (kv syncedKV) after(ctx context.Context, rev uint64, err error) (uint64, error) {
	if err != nil {
		return rev, err
	}
	if err := kv.commit.wait(ctx); err != nil {
		return 0, classify("sync registration", err)
	}
	return rev, nil
}

func (kv syncedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := kv.KeyValue.Put(ctx, key, value)
	return kv.after(ctx, rev, err)
}

func (kv syncedKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	rev, err := kv.KeyValue.PutString(ctx, key, value)
	return kv.after(ctx, rev, err)
}

func (kv syncedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := kv.KeyValue.Create(ctx, key, value, opts...)
	return kv.after(ctx, rev, err)
}

func (kv syncedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := kv.KeyValue.Update(ctx, key, value, revision)
	return kv.after(ctx, rev, err)
}

func (kv syncedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := kv.KeyValue.Delete(ctx, key, opts...)
	_, err = kv.after(ctx, 0, err)
	return err
}

func (kv syncedKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := kv.KeyValue.Purge(ctx, key, opts...)
	_, err = kv.after(ctx, 0, err)
	return err
}
