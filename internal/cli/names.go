package cli

import (
	"strings"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// eventTypeNames are the short names users type and klingctl prints, in
// enum order.
var eventTypeNames = []struct {
	name string
	typ  gatewayv1.EventType
}{
	{"video.created", gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED},
	{"video.processing", gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING},
	{"video.completed", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED},
	{"video.failed", gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED},
	{"video.cancelled", gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED},
}

const eventTypeHelp = "created, processing, completed, failed, cancelled (or video.completed, EVENT_TYPE_VIDEO_COMPLETED)"

// parseEventType accepts `completed`, `video.completed`, `VIDEO_COMPLETED`
// and `EVENT_TYPE_VIDEO_COMPLETED`, in any case.
func parseEventType(s string) (gatewayv1.EventType, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "event_type_")
	n = strings.ReplaceAll(n, "_", ".")
	if !strings.Contains(n, ".") {
		n = "video." + n
	}
	for _, e := range eventTypeNames {
		if e.name == n {
			return e.typ, nil
		}
	}
	return 0, usagef("unknown event type %q: use %s", s, eventTypeHelp)
}

// parseEventTypes parses every value of a repeatable, comma-separated flag.
func parseEventTypes(values []string) ([]gatewayv1.EventType, error) {
	var out []gatewayv1.EventType
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			continue
		}
		t, err := parseEventType(v)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// eventTypeName is the short name of t, or raw (what the sender wrote) for
// a type klingfan does not know.
func eventTypeName(t gatewayv1.EventType, raw string) string {
	for _, e := range eventTypeNames {
		if e.typ == t {
			return e.name
		}
	}
	if raw != "" {
		return raw
	}
	return "unknown"
}

// eventTypeList prints a registration's type filter.
func eventTypeList(types []gatewayv1.EventType) string {
	if len(types) == 0 {
		return "all"
	}
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = eventTypeName(t, "")
	}
	return strings.Join(names, ",")
}

// jobStatusName is the lower-case status ("succeeded"), or raw for one
// klingfan does not know.
func jobStatusName(s gatewayv1.JobStatus, raw string) string {
	if s == gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED {
		return raw
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

// schemeNames maps the short scheme names to the enum.
var schemeNames = []struct {
	name    string
	aliases []string
	scheme  gatewayv1.SignatureScheme
}{
	{"kling", []string{"kling-signature", "kling_signature"}, gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE},
	{"standard", []string{"standard-webhooks", "standard_webhooks"}, gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS},
	{"token", []string{"url-token", "url_token"}, gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN},
}

// parseScheme accepts kling|standard|token and the enum names.
func parseScheme(s string) (gatewayv1.SignatureScheme, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "signature_scheme_")
	for _, e := range schemeNames {
		if n == e.name {
			return e.scheme, nil
		}
		for _, a := range e.aliases {
			if n == a {
				return e.scheme, nil
			}
		}
	}
	return 0, usagef("unknown signature scheme %q: use kling, standard or token", s)
}

func schemeName(s gatewayv1.SignatureScheme) string {
	for _, e := range schemeNames {
		if e.scheme == s {
			return e.name
		}
	}
	return s.String()
}

// formatNames maps `klingctl example --format` values to wire formats.
var formatNames = []struct {
	name   string
	format gatewayv1.SourceFormat
}{
	{"seed", gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT},
	{"legacy", gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY},
	{"v2", gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2},
}

func parseFormat(s string) (gatewayv1.SourceFormat, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	for _, e := range formatNames {
		if n == e.name || n == strings.ToLower(e.format.String()) {
			return e.format, nil
		}
	}
	return 0, usagef("unknown format %q: use seed (signed JSON events), legacy (task callbacks) or v2 (new task callbacks)", s)
}

func formatName(f gatewayv1.SourceFormat) string {
	for _, e := range formatNames {
		if e.format == f {
			return e.name
		}
	}
	return strings.ToLower(strings.TrimPrefix(f.String(), "SOURCE_FORMAT_"))
}

// kindHelp lists the job kinds --kind accepts.
const kindHelp = "video, image, audio, voice, element, subtitle (or JOB_KIND_AUDIO)"

// parseJobKind accepts `audio` and `JOB_KIND_AUDIO`, in any case.
func parseJobKind(s string) (gatewayv1.JobKind, error) {
	n := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(n, "JOB_KIND_") {
		n = "JOB_KIND_" + n
	}
	if v, ok := gatewayv1.JobKind_value[n]; ok && v != 0 {
		return gatewayv1.JobKind(v), nil
	}
	return 0, usagef("unknown job kind %q: use %s", s, kindHelp)
}

// parseJobKinds parses every value of a repeatable, comma-separated flag.
func parseJobKinds(values []string) ([]gatewayv1.JobKind, error) {
	var out []gatewayv1.JobKind
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			continue
		}
		k, err := parseJobKind(v)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// jobKindName is the lower-case kind ("audio"), or "" when unknown.
func jobKindName(k gatewayv1.JobKind) string {
	if k == gatewayv1.JobKind_JOB_KIND_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "JOB_KIND_"))
}

// parseView maps --view basic|full.
func parseView(s string) (gatewayv1.EventView, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "basic":
		return gatewayv1.EventView_EVENT_VIEW_BASIC, nil
	case "full":
		return gatewayv1.EventView_EVENT_VIEW_FULL, nil
	}
	return 0, usagef("unknown view %q: use basic or full", s)
}
