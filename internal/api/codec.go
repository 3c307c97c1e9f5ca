package api

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/klingfan/klingfan/internal/hub"
)

// serverCodec is gRPC's proto codec, except that it sends a hub item as
// the bytes the hub encoded once for every stream. Fan-out encodes an
// event once and sends the same bytes on every stream that wants it, so the
// cost of marshalling does not grow with the number of streams (see
// docs/performance.md, "Measurements behind the code").
type serverCodec struct {
	encoding.CodecV2
}

// ServerCodec returns the codec the gRPC servers must use (with
// grpc.ForceServerCodecV2) so that Subscribe can send pre-encoded events.
func ServerCodec() encoding.CodecV2 {
	return serverCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

// Marshal passes a hub item's shared wire form through: a buffer list
// built once per item (hub.Item.Wire), so sending it allocates nothing
// per stream. mem.SliceBuffer never returns the bytes to a pool or writes
// to them, so every stream may send the same list.
func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if it, ok := v.(*hub.Item); ok {
		return it.Wire()
	}
	return c.CodecV2.Marshal(v)
}
