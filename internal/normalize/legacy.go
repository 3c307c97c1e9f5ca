package normalize

import (
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file reads the legacy task callbacks: flat task_id, task_status,
// millisecond timestamps, units and balance deducted, the creation
// parameters in task_info, and a task_result whose collections depend on
// the family (videos, images, series images, audio tracks, voices,
// elements).

// legacyAudioKeys names the members of a legacy audio track.
var legacyAudioKeys = audioKeys{mp3: "url_mp3", wav: "url_wav", mp3Duration: "duration_mp3", wavDuration: "duration_wav"}

// legacyVoiceKeys names the members of a legacy `task_result.voices[]`
// custom voice ({voice_id, voice_name, trial_url, owned_by}, page
// video/2-6/voice-customization). The trial audio is the voice's sample,
// which the new shape calls url.
var legacyVoiceKeys = voiceKeys{id: "voice_id", name: "voice_name", url: "trial_url"}

// legacyCollection reads one element o, at path, of a task_result array
// into job.
type legacyCollection func(o object, path fieldPath, job *gatewayv1.Job, r *report)

// legacyCollections maps each task_result array the pages document to its
// reader. Any other task_result member is kept whole in unmapped_outputs.
// Omni-image series images join the plain images, since a consumer wants
// every image of the task in one list and image_result_type says which it
// was.
var legacyCollections = map[string]legacyCollection{
	"videos": func(o object, p fieldPath, job *gatewayv1.Job, r *report) {
		job.Videos = append(job.Videos, videoOf(newMembers(o, p, r)))
	},
	"images": func(o object, p fieldPath, job *gatewayv1.Job, r *report) {
		job.Images = append(job.Images, legacyImageOf(newMembers(o, p, r), len(job.Images))...)
	},
	"series_images": func(o object, p fieldPath, job *gatewayv1.Job, r *report) {
		job.Images = append(job.Images, legacyImageOf(newMembers(o, p, r), len(job.Images))...)
	},
	"audios": func(o object, p fieldPath, job *gatewayv1.Job, r *report) {
		job.Audios = append(job.Audios, audioOf(newMembers(o, p, r), legacyAudioKeys))
	},
	"voices": func(o object, p fieldPath, job *gatewayv1.Job, r *report) {
		job.Voices = append(job.Voices, voiceOf(newMembers(o, p, r), legacyVoiceKeys))
	},
	"elements": func(o object, p fieldPath, job *gatewayv1.Job, r *report) {
		job.Elements = append(job.Elements, legacyElementOf(newMembers(o, p, r)))
	},
}

// parseLegacy normalizes a legacy task callback. Only task_id and
// task_status can fail it; everything else degrades per member.
func parseLegacy(top object, r *report) (*gatewayv1.Event, error) {
	var head members
	status, job, err := legacyHeader.read(top, r, &head)
	if err != nil {
		return nil, err
	}
	m := &head
	readLegacyBilling(m, job)
	readWatermark(m, job)
	if info, ok := m.object("task_info"); ok {
		sub := newMembers(info, at("task_info"), r)
		sub.id(legacyHeader.external, &job.ExternalId)
		if job.WatermarkEnabled == nil {
			// Some APIs echo the creation parameters, watermark included,
			// in task_info instead.
			readWatermark(sub, job)
		}
		if parent, ok := sub.object("parent_video"); ok && parent != nil {
			job.ParentVideo = videoOf(newMembers(parent, at("task_info.parent_video"), r))
			sub.take("parent_video")
		}
		m.nest("task_info", sub)
	}
	readLegacyResult(m, job)
	return legacyHeader.finish(status, job, m), nil
}

// readLegacyBilling reads the units and the balance a task cost. Both
// become Charges, so consumers read one list whatever the shape:
// `final_unit_deduction` is {charge_type "unit", amount} (and stays in
// units_deducted, where v1 consumers read it), and
// `final_balance_deduction {quota, list_price}` is {charge_type "cash",
// amount = quota (the discounted price), list_price}; Kling gives no
// currency for it, so currency stays empty.
func readLegacyBilling(m *members, job *gatewayv1.Job) {
	if m.decimal("final_unit_deduction", &job.UnitsDeducted); job.UnitsDeducted != "" {
		job.Billing = append(job.Billing, &gatewayv1.Charge{ChargeType: "unit", Amount: job.UnitsDeducted})
	}
	balance, ok := m.object("final_balance_deduction")
	if !ok || balance == nil {
		return
	}
	c := &gatewayv1.Charge{ChargeType: "cash"}
	sub := newMembers(balance, at("final_balance_deduction"), m.r)
	sub.decimal("quota", &c.Amount)
	sub.decimal("list_price", &c.ListPrice)
	c.UnmappedJson = sub.unmapped()
	m.take("final_balance_deduction")
	if c.Amount != "" || c.ListPrice != "" || c.UnmappedJson != "" {
		job.Billing = append(job.Billing, c)
	}
}

// readLegacyResult reads task_result: each collection the pages document
// into its field, and anything else whole into unmapped_outputs.
func readLegacyResult(m *members, job *gatewayv1.Job) {
	result, ok := m.object("task_result")
	if !ok {
		return
	}
	m.take("task_result")
	p := at("task_result")
	sub := newMembers(result, p, m.r)
	sub.str("result_type", &job.ImageResultType)
	for _, mem := range result {
		if sub.mapped(mem.key) {
			continue
		}
		read, known := legacyCollections[mem.key]
		if !known {
			if !absent(mem.raw) {
				m.r.leave(join(p, mem.key), "is not a known task result")
				job.UnmappedOutputs = append(job.UnmappedOutputs,
					unmappedOutput(join(p, mem.key), mem.key, mem.raw, "unknown task result member"))
			}
			continue
		}
		base := join(p, mem.key)
		for i, raw := range sub.array(mem.key) {
			path := elemOf(base, i)
			o, ok := decodeOutput(raw, path, m.r)
			if !ok {
				job.UnmappedOutputs = append(job.UnmappedOutputs, unmappedOutput(path.String(), mem.key, raw, "not a JSON object"))
				continue
			}
			read(o, path, job, m.r)
		}
		if !sub.mapped(mem.key) {
			// The collection is not an array: keep it whole.
			job.UnmappedOutputs = append(job.UnmappedOutputs, unmappedOutput(base, mem.key, mem.raw, "not a JSON array"))
		}
	}
	if raw := result.get("result_type"); !absent(raw) && !sub.mapped("result_type") {
		// Unreadable, hence reported: keep it with the header's rest.
		m.nested = append(m.nested, member{key: "task_result", raw: `{"result_type":` + raw + `}`})
	}
}
