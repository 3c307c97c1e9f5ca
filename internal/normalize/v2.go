package normalize

import (
	"strings"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file reads the task callbacks of the newer model APIs: id, status,
// millisecond create_time/update_time, typed outputs and billing.

// v2AudioKeys names the members of a new-shape audio output.
var v2AudioKeys = audioKeys{mp3: "mp3_url", wav: "wav_url", mp3Duration: "mp3_duration", wavDuration: "wav_duration"}

// parseV2 normalizes a new-shape task callback.
func parseV2(top object, r *report) (*gatewayv1.Event, error) {
	status, job, err := v2Header.read(top)
	if err != nil {
		return nil, err
	}
	if job.WatermarkEnabled, err = watermarkEnabled(top, root, "watermark_info"); err != nil {
		return nil, err
	}
	outputs, err := top.array(root, "outputs")
	if err != nil {
		return nil, err
	}
	for i, raw := range outputs {
		if err := readV2Output(raw, elemOf("outputs", i), job, r); err != nil {
			return nil, err
		}
	}
	billing, err := top.array(root, "billing")
	if err != nil {
		return nil, err
	}
	for i, raw := range billing {
		c, err := chargeAt(raw, elemOf("billing", i))
		if err != nil {
			return nil, err
		}
		job.Billing = append(job.Billing, c)
	}
	return v2Header.event(status, job), nil
}

// readV2Output reads one element of outputs[] into the field its type
// names. A type this package does not know is left to the raw body and
// reported, never an error: Kling adds output types with new APIs.
func readV2Output(raw string, path fieldPath, job *gatewayv1.Job, r *report) error {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return err
	}
	typ, err := o.str(path, "type")
	if err != nil {
		return err
	}
	switch strings.ToLower(typ) {
	case "video":
		v, err := videoOf(o, path)
		if err != nil {
			return err
		}
		job.Videos = append(job.Videos, v)
	case "image":
		img, err := v2ImageOf(o, path, len(job.Images))
		if err != nil {
			return err
		}
		job.Images = append(job.Images, img)
	case "audio":
		a, err := audioOf(o, path, v2AudioKeys)
		if err != nil {
			return err
		}
		job.Audios = append(job.Audios, a)
	case "voice":
		v, err := voiceOf(o, path)
		if err != nil {
			return err
		}
		job.Voices = append(job.Voices, v)
	case "element":
		e, err := elementOf(o, path)
		if err != nil {
			return err
		}
		job.Elements = append(job.Elements, e)
	case "subbed_video":
		// The subtitled video is a video like any other; only the kind
		// says it came from a subtitling task.
		v, err := videoOf(o, path)
		if err != nil {
			return err
		}
		job.Videos = append(job.Videos, v)
		job.Kind = gatewayv1.JobKind_JOB_KIND_SUBTITLE
	case "srt", "ass":
		s := &gatewayv1.Subtitle{Format: strings.ToLower(typ)}
		if s.Url, err = o.str(path, "url"); err != nil {
			return err
		}
		job.Subtitles = append(job.Subtitles, s)
	default:
		r.leave(join(path, "type"), quote(typ)+" is not a known output type")
	}
	return nil
}
