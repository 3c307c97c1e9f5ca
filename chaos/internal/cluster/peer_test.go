package cluster

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

func TestParseProcAddr(t *testing.T) {
	// /proc/net/tcp prints the address as the kernel's 32-bit word in
	// host byte order.
	word := func(a netip.Addr) string {
		b := a.As4()
		return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(b[:]))
	}
	tests := []struct {
		name string
		in   string
		want netip.AddrPort
		err  bool
	}{
		{name: "a node's client port", in: word(netip.MustParseAddr("10.213.0.12")) + ":107E", want: netip.MustParseAddrPort("10.213.0.12:4222")},
		{name: "loopback", in: word(netip.MustParseAddr("127.0.0.1")) + ":1F90", want: netip.MustParseAddrPort("127.0.0.1:8080")},
		{name: "IPv6 width", in: "00000000000000000000000001000000:1F90", err: true},
		{name: "no port", in: "0100007F", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcAddr(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("parseProcAddr(%q) error %v, want error %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("parseProcAddr(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
