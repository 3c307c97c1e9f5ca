package app

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxAuxStreams bounds, over the whole server, the streams that no other
// limit counts: health Watch and List, and reflection. Subscriptions are
// bounded by --max-streams and --max-streams-per-token instead.
const maxAuxStreams = 64

// subscribeMethod is the one stream with limits of its own.
const subscribeMethod = "/kling.gateway.v1.EventService/Subscribe"

// auxStreamCap refuses a health or reflection stream beyond maxAuxStreams
// with RESOURCE_EXHAUSTED, so even a holder of a valid token cannot pin an
// unbounded number of goroutines with streams no quota counts.
func auxStreamCap(limit int) grpc.StreamServerInterceptor {
	slots := make(chan struct{}, limit)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod == subscribeMethod {
			return handler(srv, ss)
		}
		select {
		case slots <- struct{}{}:
		default:
			return status.Errorf(codes.ResourceExhausted, "%s: the server already holds %d such streams", info.FullMethod, limit)
		}
		defer func() { <-slots }()
		return handler(srv, ss)
	}
}
