package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/errkind"
)

// maxAuxStreams bounds, per token, the streams that no other limit
// counts: health Watch and List, and reflection. Subscribe and Consume
// are bounded by --max-streams and --max-streams-per-token instead. A
// count per token, not one for the whole server, so that one token's
// streams cannot refuse another's.
const maxAuxStreams = 64

// defaultAuxLifetime is how long a health Watch or reflection stream may
// last: the connection idle limit, so that such a stream cannot keep a
// connection (and its --max-grpc-conns slot) open for good. A client that
// still wants to watch opens another.
const defaultAuxLifetime = grpcMaxConnIdle

// auxLifetime is cfg's lifetime of health and reflection streams.
func auxLifetime(cfg config.Config) time.Duration {
	if cfg.AuxStreamLifetime > 0 {
		return cfg.AuxStreamLifetime
	}
	return defaultAuxLifetime
}

// subscribeMethod and consumeMethod are the streams with limits of their
// own.
const (
	subscribeMethod = "/kling.gateway.v1.EventService/Subscribe"
	consumeMethod   = "/kling.gateway.v1.ConsumerGroupService/Consume"
)

// auxStreamCap refuses a health or reflection stream beyond limit for its
// token with RESOURCE_EXHAUSTED, so even a holder of a valid token cannot
// pin an unbounded number of goroutines with streams no quota counts, and
// ends each such stream after lifetime.
//
//nolint:contextcheck // each stream's deadline derives from the stream's own context
func auxStreamCap(limit int, lifetime time.Duration) grpc.StreamServerInterceptor {
	var (
		mu   sync.Mutex
		open = make(map[string]int) // guarded by mu: streams per token name
	)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod == subscribeMethod || info.FullMethod == consumeMethod {
			return handler(srv, ss)
		}
		token := auth.TokenName(ss.Context())
		mu.Lock()
		if open[token] >= limit {
			mu.Unlock()
			return errkind.New(errkind.ResourceExhausted, "app", fmt.Sprintf("%s: this token already holds %d such streams", info.FullMethod, limit))
		}
		open[token]++
		mu.Unlock()
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			if open[token]--; open[token] == 0 {
				delete(open, token)
			}
		}()
		ctx, cancel := context.WithTimeout(ss.Context(), lifetime)
		defer cancel()
		return handler(srv, contextStream{ServerStream: ss, ctx: ctx})
	}
}
