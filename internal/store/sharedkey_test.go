package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/klingfan/klingfan/internal/store"
)

// xorSealer is a stand-in sealer: reversible, visibly different from the
// key, and refusing what it did not make.
type xorSealer struct{ b byte }

func (x xorSealer) SealKey(key []byte, name string) []byte {
	out := append([]byte("sealed:"+name+":"), key...)
	for i := range key {
		out[len(out)-len(key)+i] ^= x.b
	}
	return out
}

func (x xorSealer) OpenKey(sealed []byte, name string) ([]byte, error) {
	key, ok := bytes.CutPrefix(sealed, []byte("sealed:"+name+":"))
	if !ok || x.b != 0x5a {
		return nil, errors.New("wrong key")
	}
	out := bytes.Clone(key)
	for i := range out {
		out[i] ^= x.b
	}
	return out, nil
}

// A shared key stored in plain text is sealed in place and keeps its
// value; a sealer that cannot open it is an error, not a new key.
func TestSealedSharedKey(t *testing.T) {
	st := openStore(t, t.TempDir())
	ctx := context.Background()
	plain, err := st.SharedKey(ctx, "page-token")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		got, err := st.SealedSharedKey(ctx, "page-token", xorSealer{0x5a})
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("call %d: key changed or failed: %v", i, err)
		}
	}
	e, err := st.KV().Get(ctx, store.InternalKeyPrefix+"keys.page-token")
	if err != nil || bytes.Contains(e.Value(), plain) {
		t.Fatalf("the stored key is still in plain text (%v)", err)
	}
	if _, err := st.SealedSharedKey(ctx, "page-token", xorSealer{0x11}); err == nil {
		t.Fatal("a sealer that cannot open the key was accepted")
	}
}
