package app

import (
	"context"

	"google.golang.org/grpc"
)

// withoutMessageMetrics runs the gRPC metrics interceptor for every stream,
// but lets Subscribe send its events on the stream unwrapped: the
// interceptor's per-message counter (grpc_server_msg_sent_total) resolved
// its labels and took two clock readings for every event on every stream,
// a cost that grows with streams × events. Subscribe's calls are
// still counted and timed (grpc_server_handled_total and the handling-time
// histogram); its events are counted once by klingfan_hub_deliveries_total.
func withoutMessageMetrics(metrics grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod != subscribeMethod {
			return metrics(srv, ss, info, handler)
		}
		return metrics(srv, ss, info, func(srv any, monitored grpc.ServerStream) error {
			// Keep the context the interceptor made (it may carry an
			// exemplar); send and receive on the stream itself.
			return handler(srv, contextStream{ServerStream: ss, ctx: monitored.Context()})
		})
	}
}

// contextStream is a server stream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s contextStream) Context() context.Context { return s.ctx }
