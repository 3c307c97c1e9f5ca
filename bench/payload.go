package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Secrets and tokens of the servers the harness starts. They only ever
// protect loopback listeners in temporary directories.
const (
	benchSecret = "klingbench-webhook-secret-0123456789" //nolint:gosec // G101: guards a loopback server in a temporary directory, see above
	benchToken  = "klingbench-admin-token-0123456789abcdef"
)

// hotJobs is how many job ids ingest load cycles through.
const hotJobs = 100

// hotJob is the i-th of the job ids ingest load cycles through.
func hotJob(i int) string { return fmt.Sprintf("kb-job-%02d", i%hotJobs) }

// timePrefix marks the send time a latency probe carries in data.prompt.
var timePrefix = []byte("klingbench t=")

// appendBody appends a signed-JSON Kling delivery ("video.completed") about
// job to dst, shaped like the examples Kling documents (about 600 bytes).
// prompt lands in data.prompt, which the normalized event carries, so a
// subscriber can read it back.
func appendBody(dst []byte, job string, prompt []byte) []byte {
	dst = append(dst, `{"event":"video.completed","timestamp":"2026-06-10T08:39:54.151234Z","data":{"job_id":"`...)
	dst = append(dst, job...)
	dst = append(dst, `","status":"completed","video_url":"https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/`...)
	dst = append(dst, job...)
	dst = append(dst, `.mp4","thumbnail_url":"https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/`...)
	dst = append(dst, job...)
	dst = append(dst, `.jpg","duration":5.1,"prompt":"`...)
	dst = append(dst, prompt...)
	dst = append(dst, `","model":"kling-v2-1-master","created_at":"2026-06-10T08:38:19Z","completed_at":"2026-06-10T08:39:54.151Z","progress":100}}`...)
	return dst
}

// appendTimePrompt appends the probe prompt carrying t (Unix nanoseconds)
// and the probe's index.
func appendTimePrompt(dst []byte, t int64, index int) []byte {
	dst = append(dst, timePrefix...)
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, int64(index), 10)
}

// frame is the part of a SubscribeResponse the harness reads.
type frame struct {
	seq    uint64
	sentAt int64 // from a probe prompt; 0 when the event carries none
	probe  int   // the probe's index; -1 when the event is no probe
}

// parseFrame reads the event's sequence and probe time from a raw
// SubscribeResponse without decoding the rest, so the subscriber side of
// the harness (which shares the machine with the server) stays cheap.
// Field numbers: SubscribeResponse.event = 1, Event.sequence = 2,
// Event.job = 10, Job.prompt = 6.
func parseFrame(b []byte) frame {
	f := frame{probe: -1}
	ev := field(b, 1)
	if ev == nil {
		return f
	}
	forEach(ev, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) {
		switch {
		case num == 2 && typ == protowire.VarintType:
			f.seq = u
		case num == 10 && typ == protowire.BytesType:
			if p := field(v, 6); bytes.HasPrefix(p, timePrefix) {
				t, i, _ := strings.Cut(string(p[len(timePrefix):]), "/")
				f.sentAt, _ = strconv.ParseInt(t, 10, 64)
				if n, err := strconv.Atoi(i); err == nil {
					f.probe = n
				}
			}
		}
	})
	return f
}

// field returns the bytes of the first length-delimited field num in b.
func field(b []byte, num protowire.Number) []byte {
	var out []byte
	forEach(b, func(n protowire.Number, typ protowire.Type, v []byte, _ uint64) {
		if out == nil && n == num && typ == protowire.BytesType {
			out = v
		}
	})
	return out
}

// forEach calls fn for every field of the message in b: v for
// length-delimited fields, u for varints. It stops at malformed input.
func forEach(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, u uint64)) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			u, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return
			}
			fn(num, typ, nil, u)
			b = b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return
			}
			fn(num, typ, v, 0)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return
			}
			b = b[n:]
		}
	}
}
