package store_test

import (
	"context"
	"testing"
)

func BenchmarkTmpReadOverhead(b *testing.B) {
	s := openStore(b, b.TempDir())
	fill(b, s, 5000)
	for b.Loop() {
		if _, _, err := s.Read(context.Background(), 100, 1, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
func BenchmarkTmpReadBackward(b *testing.B) {
	s := openStore(b, b.TempDir())
	fill(b, s, 5000)
	for b.Loop() {
		if _, _, err := s.ReadBackward(context.Background(), 4000, 50, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
func BenchmarkTmpGet(b *testing.B) {
	s := openStore(b, b.TempDir())
	fill(b, s, 5000)
	for b.Loop() {
		if _, err := s.Get(context.Background(), 100); err != nil {
			b.Fatal(err)
		}
	}
}
func BenchmarkTmpBounds(b *testing.B) {
	s := openStore(b, b.TempDir())
	fill(b, s, 5000)
	for b.Loop() {
		if _, _, err := s.Bounds(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
