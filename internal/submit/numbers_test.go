package submit_test

import (
	"bytes"
	"math"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// A create body travels in a google.protobuf.Struct, whose numbers are
// float64: an integer beyond ±(2^53-1) may already be another number than
// the caller wrote (REST's JSON 9007199254740993 arrives as
// 9007199254740992). Such a number is refused with INVALID_ARGUMENT naming
// its path, over gRPC and REST, before Kling is called; numbers within the
// range reach Kling exactly.
func TestCreateJobRefusesInexactNumbers(t *testing.T) {
	k := newFakeKling(t)
	e := start(t, k)
	num := structpb.NewNumberValue
	obj := func(fields map[string]*structpb.Value) *structpb.Value {
		return structpb.NewStructValue(&structpb.Struct{Fields: fields})
	}
	list := func(vs ...*structpb.Value) *structpb.Value {
		return structpb.NewListValue(&structpb.ListValue{Values: vs})
	}

	t.Run("gRPC", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			body  map[string]*structpb.Value
			field string
		}{
			{"2^53 at the top level", map[string]*structpb.Value{"seed": num(1 << 53)}, "body.seed"},
			{"-2^53", map[string]*structpb.Value{"seed": num(-(1 << 53))}, "body.seed"},
			{"a huge float", map[string]*structpb.Value{"cfg_scale": num(1e300)}, "body.cfg_scale"},
			{"in an object in a list", map[string]*structpb.Value{"image_list": list(obj(map[string]*structpb.Value{"weight": num(1)}),
				obj(map[string]*structpb.Value{"seed": num(1 << 60)}))}, "body.image_list[1].seed"},
			{"under options", map[string]*structpb.Value{"options": obj(map[string]*structpb.Value{"seed": num(1 << 54)})}, "body.options.seed"},
			{"NaN", map[string]*structpb.Value{"cfg_scale": num(math.NaN())}, "body.cfg_scale"},
			{"infinity", map[string]*structpb.Value{"cfg_scale": num(math.Inf(-1))}, "body.cfg_scale"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.jobs.CreateJob(ctxT(t), &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/text2video",
					Body: &structpb.Struct{Fields: tc.body}, RequestId: "big-" + strings.ReplaceAll(tc.name, " ", "-"), WebhookId: hook})
				st := status.Convert(err)
				if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field+": ") {
					t.Fatalf("got %v %q, want INVALID_ARGUMENT naming %s", st.Code(), st.Message(), tc.field)
				}
				if f := fieldViolation(st); f != tc.field {
					t.Errorf("field violation names %q, want %q", f, tc.field)
				}
			})
		}
	})
	t.Run("REST", func(t *testing.T) {
		for _, tc := range []struct{ name, body, field string }{
			{"2^53+1 as JSON", `{"seed":9007199254740993}`, "body.seed"},
			{"a 20-digit integer", `{"prompt":"x","seeds":[1,12345678901234567890]}`, "body.seeds[1]"},
			{"negative, nested", `{"camera_control":{"config":{"zoom":-9007199254740993}}}`, "body.camera_control.config.zoom"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := []byte(`{"endpoint":"/v1/videos/text2video","requestId":"rest-big-` + strings.ReplaceAll(tc.name, " ", "-") + `","webhookId":"jobs","body":` + tc.body + `}`)
				code, out := e.srv.Post(t, "/v1/jobs", http.Header{"Authorization": {"Bearer " + apptest.AdminToken}}, req)
				if code != http.StatusBadRequest || !bytes.Contains(out, []byte(`"message":"`+tc.field+`: `)) || !bytes.Contains(out, []byte(`"field":"`+tc.field+`"`)) {
					t.Fatalf("POST /v1/jobs: %d %s, want 400 naming %s", code, out, tc.field)
				}
			})
		}
	})
	if n := len(k.calls()); n != 0 {
		t.Fatalf("Kling got %d creates, want none: %+v", n, k.calls())
	}

	// ±(2^53-1) and fractions are exact: they reach Kling as sent.
	code, out := e.srv.Post(t, "/v1/jobs", http.Header{"Authorization": {"Bearer " + apptest.AdminToken}},
		[]byte(`{"endpoint":"/v1/videos/text2video","requestId":"rest-exact","webhookId":"jobs","body":{"seed":9007199254740991,"low":-9007199254740991,"cfg_scale":0.5}}`))
	if code != http.StatusOK {
		t.Fatalf("POST /v1/jobs within the range: %d %s", code, out)
	}
	c := k.calls()
	if len(c) != 1 || c[0].Body["seed"] != float64(1<<53-1) || c[0].Body["low"] != -float64(1<<53-1) || c[0].Body["cfg_scale"] != 0.5 {
		t.Fatalf("Kling got %+v", c)
	}
}

// fieldViolation returns the field of st's first BadRequest violation.
func fieldViolation(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}
