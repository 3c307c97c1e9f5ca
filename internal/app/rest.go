package app

// The REST side: grpc-gateway over an in-memory connection to the gRPC
// server, and the guards that run before it reads a body.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/api"
)

// gatewayMux builds the grpc-gateway mux over an in-memory connection to the
// gRPC server.
func (s *server) gatewayMux(ctx context.Context) (*runtime.ServeMux, error) {
	s.gatewayLn = bufconn.Listen(1 << 20)
	dial := append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.gatewayLn.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, s.tracing.GRPCDialOptions()...)
	conn, err := grpc.NewClient("passthrough:///klingfan", dial...)
	if err != nil {
		return nil, fmt.Errorf("app: gateway connection: %w", err)
	}
	s.gatewayConn = conn
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false},
			// Unknown fields are a client mistake worth a 400, not silence.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithForwardResponseOption(flushLiveStream),
	)
	if err := gatewayv1.RegisterEventServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("app: register event gateway: %w", err)
	}
	if err := gatewayv1.RegisterWebhookServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("app: register webhook gateway: %w", err)
	}
	if err := gatewayv1.RegisterJobServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("app: register job gateway: %w", err)
	}
	if err := gatewayv1.RegisterConsumerGroupServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("app: register consumer group gateway: %w", err)
	}
	if err := gatewayv1.RegisterAdminServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("app: register admin gateway: %w", err)
	}
	return mux, nil
}

// flushLiveStream sends the HTTP response headers of a REST subscription as
// soon as the gRPC stream says it is live (its header carries the head
// sequence), so a REST client, like a gRPC one, can wait for headers and
// then rely on seeing every later event.
func flushLiveStream(ctx context.Context, w http.ResponseWriter, msg proto.Message) error {
	if msg != nil {
		return nil
	}
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok || (len(md.HeaderMD.Get(api.HeadSequenceHeader)) == 0 && len(md.HeaderMD.Get(api.ConsumerLiveHeader)) == 0) {
		return nil
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	return http.NewResponseController(w).Flush()
}

// writeStatus answers a REST request that fails before grpc-gateway sees
// it in grpc-gateway's own error shape ({"code", "message", "details"} with
// the status's HTTP equivalent), so every management route has one error
// body whichever layer refused it.
func writeStatus(w http.ResponseWriter, st *status.Status) {
	body, err := protojson.Marshal(st.Proto())
	if err != nil {
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	_, _ = w.Write(append(body, '\n'))
}

// headerOnce lets flushLiveStream send a stream's headers as soon as it is
// live. grpc-gateway does not know they were sent, and when the stream ends
// in an error (a client that hung up, a send deadline) it writes them again,
// which net/http would log as a superfluous WriteHeader for every
// disconnecting `curl -N`. The error itself still goes out as the stream's
// last line.
type headerOnce struct {
	http.ResponseWriter
	wrote bool
}

func (w *headerOnce) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerOnce) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the writer that can flush and set
// deadlines.
func (w *headerOnce) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// REST bounds: a request body the API could ever need is small, and only
// the subscription stream may stay open.
const (
	maxRESTBody     = 1 << 20
	restReadTimeout = 30 * time.Second
	subscribePath   = "/v1/events:subscribe"
)

// guardREST checks the bearer token before grpc-gateway reads a body (it
// reads the whole body before calling gRPC, where the full check runs),
// bounds the body's size and, except on the subscription stream, the time
// to send it.
func (s *server) guardREST(gateway *runtime.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.authn.Recognize(r.Context(), r.Header); err != nil {
			_, out := runtime.MarshalerForRequest(gateway, r)
			runtime.HTTPError(r.Context(), gateway, out, w, r, api.Status(s.log, r.URL.Path, err))
			return
		}
		if r.URL.Path != subscribePath && !isConsumePath(r.URL.Path) {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(restReadTimeout))
		} else {
			w = &headerOnce{ResponseWriter: w}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRESTBody)
		gateway.ServeHTTP(w, r)
	})
}

// isConsumePath reports whether path is a consumer group's NDJSON stream,
// which, like the subscription stream, stays open.
func isConsumePath(path string) bool {
	return strings.HasPrefix(path, "/v1/consumerGroups/") && strings.HasSuffix(path, ":consume")
}
