package cli

import (
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// describe turns an error into the one line klingctl prints after
// "klingctl: ". gRPC statuses get a sentence a user can act on, ending with
// the status code name so scripts and bug reports can match it.
func (c *client) describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return oneLine(err.Error())
	}
	msg := st.Message()
	code := codeName(st.Code())
	switch st.Code() {
	case codes.Unavailable:
		if reason, ok := c.transportReason(msg); ok {
			return fmt.Sprintf("cannot reach %s: %s", c.server, reason)
		}
		return fmt.Sprintf("%s is unavailable: %s (%s)", c.server, oneLine(msg), code)
	case codes.DeadlineExceeded:
		return fmt.Sprintf("%s did not answer within %s (%s)", c.server, c.timeout, code)
	case codes.Unauthenticated:
		if c.tokenSource == "" {
			return fmt.Sprintf("the server needs a token: pass --token, set KLINGFAN_TOKEN, or point --data-dir at the server's data directory (%s)", code)
		}
		return fmt.Sprintf("the server refused the token from %s (%s)", c.tokenSource, code)
	case codes.PermissionDenied:
		return fmt.Sprintf("the token may not do this: %s (%s)", oneLine(msg), code)
	case codes.NotFound:
		if strings.Contains(msg, "not found") {
			return fmt.Sprintf("%s (%s)", oneLine(msg), code)
		}
		return fmt.Sprintf("not found: %s (%s)", oneLine(msg), code)
	case codes.InvalidArgument:
		return fmt.Sprintf("invalid request: %s (%s)", withViolations(st, msg), code)
	case codes.OutOfRange:
		return fmt.Sprintf("%s (%s); start with --from-beginning or remove the cursor file", oneLine(msg), code)
	case codes.Unimplemented:
		return fmt.Sprintf("the server does not support this call: %s (%s)", oneLine(msg), code)
	}
	return fmt.Sprintf("%s (%s)", oneLine(msg), code)
}

// transportReason extracts why a connection failed from gRPC's transport
// error text, e.g. `connection error: desc = "transport: Error while
// dialing: dial tcp 127.0.0.1:9090: connect: connection refused"`.
func (c *client) transportReason(msg string) (string, bool) {
	lower := strings.ToLower(msg)
	usesTLS := c.useTLS || c.caFile != "" || c.certFile != "" || c.skipVerify
	if usesTLS && c.certFile == "" && (strings.Contains(lower, "certificate required") || strings.Contains(lower, "bad certificate") ||
		strings.Contains(lower, "broken pipe") || strings.Contains(lower, "connection reset by peer")) {
		return "the server closed the TLS connection (does it require a client certificate? use --cert and --key)", true
	}
	if strings.Contains(lower, "produced zero addresses") || strings.Contains(lower, "no such host") {
		return "the host name does not resolve", true
	}
	for _, known := range []string{"connection refused", "network is unreachable", "connection reset by peer", "i/o timeout", "no route to host"} {
		if strings.Contains(lower, known) {
			return known, true
		}
	}
	switch {
	case strings.Contains(lower, "first record does not look like a tls handshake"):
		return "the server does not speak TLS (drop --tls)", true
	case strings.Contains(lower, "x509:") || strings.Contains(lower, "tls:"):
		i := strings.Index(lower, "x509:")
		if i < 0 {
			i = strings.Index(lower, "tls:")
		}
		return "TLS: " + strings.TrimRight(msg[i:], `"`), true
	case strings.Contains(lower, "error reading server preface") || strings.Contains(lower, "frame too large"):
		return "the connection closed during the handshake (does the server use TLS? try --tls)", true
	case strings.HasPrefix(lower, "connection error") || strings.Contains(lower, "error while dialing"):
		return oneLine(msg), true
	}
	return "", false
}

// withViolations appends the field violations of a BadRequest detail, when
// the message does not already name them.
func withViolations(st *status.Status, msg string) string {
	msg = oneLine(msg)
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if !strings.Contains(msg, v.GetField()) {
				msg += fmt.Sprintf("; %s: %s", v.GetField(), v.GetDescription())
			}
		}
	}
	return msg
}

// codeName is the canonical upper-case name of a code, as in the gRPC
// specification (PERMISSION_DENIED).
func codeName(c codes.Code) string {
	s := c.String()
	if c == codes.OK {
		return "OK"
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// isCanceled reports a gRPC call ended by its context.
func isCanceled(err error) bool {
	return status.Code(err) == codes.Canceled
}

// oneLine keeps a message to one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}
