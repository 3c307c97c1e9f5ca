package api

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// preEncoded is a message already in wire form. Fan-out encodes an event
// once and sends the same bytes on every stream that wants it; marshalling
// per stream cost a sixth of the CPU with 1,000 subscribers.
type preEncoded []byte

// serverCodec is gRPC's proto codec, except that it sends preEncoded
// messages as they are.
type serverCodec struct {
	encoding.CodecV2
}

// ServerCodec returns the codec the gRPC servers must use (with
// grpc.ForceServerCodecV2) so that Subscribe can send pre-encoded events.
func ServerCodec() encoding.CodecV2 {
	return serverCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

// Marshal passes pre-encoded bytes through. The slice is shared with other
// streams: mem.SliceBuffer never returns it to a pool or writes to it.
func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(preEncoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.CodecV2.Marshal(v)
}
