package store

import "testing"

// The log has room again only when the append it refused would fit with
// the margin to spare: an event larger than the margin must not make a
// full log flap between full and not full.
func TestHasRoomCountsTheRefusedAppend(t *testing.T) {
	const limit = 200_000
	tests := []struct {
		name   string
		stream uint64
		need   int64
		want   bool
	}{
		{"far below, nothing refused", 100_000, 0, true},
		{"below the margin, nothing refused", 185_000, 0, true},
		{"below the margin, the refused append does not fit", 185_000, 16_000, false},
		{"the refused append fits with the margin", 150_000, 16_000, true},
		{"at the margin", 190_000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := Usage{StreamBytes: tt.stream, StreamMaxBytes: limit, StoreBytes: 1, StoreMaxBytes: 10 * limit}
			if got := hasRoom(u, tt.need); got != tt.want {
				t.Errorf("hasRoom(%d of %d, need %d) = %v, want %v", tt.stream, limit, tt.need, got, tt.want)
			}
		})
	}
}
