package normalize

import (
	"strings"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file reads the task callbacks of the newer model APIs: id, status,
// millisecond create_time/update_time, typed outputs and billing.

// v2AudioKeys names the members of a new-shape audio output.
var v2AudioKeys = audioKeys{mp3: "mp3_url", wav: "wav_url", mp3Duration: "mp3_duration", wavDuration: "wav_duration"}

// v2VoiceKeys names the members of a new-shape custom voice output.
var v2VoiceKeys = voiceKeys{id: "id", name: "name", url: "url"}

// parseV2 normalizes a new-shape task callback. Only id and status can
// fail it; everything else degrades per member, and an output that cannot
// be mapped is kept whole in unmapped_outputs.
func parseV2(top object, r *report) (*gatewayv1.Event, error) {
	var head members
	status, job, err := v2Header.read(top, r, &head)
	if err != nil {
		return nil, err
	}
	m := &head
	readWatermark(m, job)
	for i, raw := range m.array("outputs") {
		readV2Output(raw, elemOf("outputs", i), job, r)
	}
	for i, raw := range m.array("billing") {
		path := elemOf("billing", i)
		o, ok := decodeOutput(raw, path, r)
		if !ok {
			job.UnmappedOutputs = append(job.UnmappedOutputs, unmappedOutput(path.String(), "billing", raw, "not a JSON object"))
			continue
		}
		job.Billing = append(job.Billing, chargeOf(newMembers(o, path, r)))
	}
	return v2Header.finish(status, job, m), nil
}

// readV2Typed reads output m, whose type typ the pages document, into
// the field typ names, and reports false for a type they do not. The type
// is matched case-insensitively; Kling adds output types with new APIs.
func readV2Typed(typ string, m *members, job *gatewayv1.Job) bool {
	switch strings.ToLower(typ) {
	case "video":
		job.Videos = append(job.Videos, videoOf(m))
	case "image":
		job.Images = append(job.Images, v2ImageOf(m, len(job.Images)))
	case "audio":
		job.Audios = append(job.Audios, audioOf(m, v2AudioKeys))
	case "voice":
		job.Voices = append(job.Voices, voiceOf(m, v2VoiceKeys))
	case "element":
		job.Elements = append(job.Elements, elementOf(m))
	case "subbed_video":
		// The subtitled video of the drama-subtitle solution is a video
		// like any other; only the kind says it came from a subtitling
		// task.
		job.Videos = append(job.Videos, videoOf(m))
		job.Kind = gatewayv1.JobKind_JOB_KIND_SUBTITLE
	case "srt", "ass":
		job.Subtitles = append(job.Subtitles, subtitleOf(m, strings.ToLower(typ)))
	// The apparel solution (page ecommerce-replication/apparel) names its
	// products product_image, model_images and product_video, each {url,
	// watermark_url}: images and a video like any other. The page spells
	// model_images in the plural while describing one output of {url,
	// watermark_url}; it is read as one image.
	case "product_image", "model_images":
		job.Images = append(job.Images, v2ImageOf(m, len(job.Images)))
	case "product_video":
		job.Videos = append(job.Videos, videoOf(m))
	default:
		return false
	}
	return true
}

// subtitleOf reads a subtitle file output of the given format.
func subtitleOf(m *members, format string) *gatewayv1.Subtitle {
	s := &gatewayv1.Subtitle{Format: format}
	m.str("url", &s.Url)
	s.UnmappedJson = m.unmapped()
	return s
}

// readV2Output reads one element of outputs[] into the field its type
// names. An output that is not an object, has no readable type, or has a
// type this package does not know is kept whole in unmapped_outputs and
// reported, never an error.
func readV2Output(raw string, path fieldPath, job *gatewayv1.Job, r *report) {
	o, ok := decodeOutput(raw, path, r)
	if !ok {
		job.UnmappedOutputs = append(job.UnmappedOutputs, unmappedOutput(path.String(), "", raw, "not a JSON object"))
		return
	}
	typ, err := o.str(path, "type")
	if err != nil {
		r.malformed(err)
		job.UnmappedOutputs = append(job.UnmappedOutputs, unmappedOutput(path.String(), "", raw, "unreadable output type"))
		return
	}
	m := members{o: o, path: path, r: r}
	m.take("type")
	if !readV2Typed(typ, &m, job) {
		r.leave(join(path, "type"), quote(typ)+" is not a known output type")
		job.UnmappedOutputs = append(job.UnmappedOutputs, unmappedOutput(path.String(), typ, raw, "unknown output type"))
	}
}
