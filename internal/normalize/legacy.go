package normalize

import (
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file reads the legacy task callbacks: flat task_id, task_status,
// millisecond timestamps, units and balance deducted, and a task_result
// with videos, images, series images and audio tracks.

// legacyResultKeys are the task_result members parseLegacy maps; any other
// is reported as left to the raw body.
var legacyResultKeys = map[string]bool{
	"videos": true, "images": true, "series_images": true, "result_type": true, "audios": true,
}

// legacyAudioKeys names the members of a legacy audio track.
var legacyAudioKeys = audioKeys{mp3: "url_mp3", wav: "url_wav", mp3Duration: "duration_mp3", wavDuration: "duration_wav"}

// parseLegacy normalizes a legacy task callback.
func parseLegacy(top object, r *report) (*gatewayv1.Event, error) {
	status, job, err := legacyHeader.read(top)
	if err != nil {
		return nil, err
	}
	if err := readLegacyBilling(top, job); err != nil {
		return nil, err
	}
	if job.WatermarkEnabled, err = watermarkEnabled(top, root, "watermark_info"); err != nil {
		return nil, err
	}
	info, err := top.object(root, "task_info")
	if err != nil {
		return nil, err
	}
	if job.WatermarkEnabled == nil {
		// Some APIs echo the creation parameters, watermark included, in
		// task_info instead.
		if job.WatermarkEnabled, err = watermarkEnabled(info, at("task_info"), "task_info.watermark_info"); err != nil {
			return nil, err
		}
	}
	if raw := info.get("parent_video"); !absent(raw) {
		if job.ParentVideo, err = videoAt(raw, at("task_info.parent_video")); err != nil {
			return nil, err
		}
	}
	if err := readLegacyResult(top, job, r); err != nil {
		return nil, err
	}
	return legacyHeader.event(status, job), nil
}

// readLegacyBilling reads the units and the balance a task cost. Both
// become Charges, so consumers read one list whatever the shape:
// `final_unit_deduction` is {charge_type "unit", amount} (and stays in
// units_deducted, where v1 consumers read it), and
// `final_balance_deduction {quota, list_price}` is {charge_type "cash",
// amount = quota (the discounted price), list_price}; Kling gives no
// currency for it, so currency stays empty.
func readLegacyBilling(top object, job *gatewayv1.Job) (err error) {
	if job.UnitsDeducted, err = top.decimal(root, "final_unit_deduction"); err != nil {
		return err
	}
	if job.UnitsDeducted != "" {
		job.Billing = append(job.Billing, &gatewayv1.Charge{ChargeType: "unit", Amount: job.UnitsDeducted})
	}
	balance, err := top.object(root, "final_balance_deduction")
	if err != nil || balance == nil {
		return err
	}
	p := at("final_balance_deduction")
	c := &gatewayv1.Charge{ChargeType: "cash"}
	if c.Amount, err = balance.decimal(p, "quota"); err != nil {
		return err
	}
	if c.ListPrice, err = balance.decimal(p, "list_price"); err != nil {
		return err
	}
	if c.Amount != "" || c.ListPrice != "" {
		job.Billing = append(job.Billing, c)
	}
	return nil
}

// readLegacyResult reads task_result. Omni-image series images join the
// plain images, since a consumer wants every image of the task in one list
// and image_result_type says which it was.
func readLegacyResult(top object, job *gatewayv1.Job, r *report) error {
	result, err := top.object(root, "task_result")
	if err != nil {
		return err
	}
	p := at("task_result")
	videos, err := result.array(p, "videos")
	if err != nil {
		return err
	}
	for i, raw := range videos {
		v, err := videoAt(raw, elemOf("task_result.videos", i))
		if err != nil {
			return err
		}
		job.Videos = append(job.Videos, v)
	}
	for _, key := range [...]string{"images", "series_images"} {
		images, err := result.array(p, key)
		if err != nil {
			return err
		}
		for i, raw := range images {
			img, err := legacyImageAt(raw, elemOf("task_result."+key, i), len(job.Images))
			if err != nil {
				return err
			}
			job.Images = append(job.Images, img)
		}
	}
	if job.ImageResultType, err = result.str(p, "result_type"); err != nil {
		return err
	}
	audios, err := result.array(p, "audios")
	if err != nil {
		return err
	}
	for i, raw := range audios {
		a, err := audioAt(raw, elemOf("task_result.audios", i), legacyAudioKeys)
		if err != nil {
			return err
		}
		job.Audios = append(job.Audios, a)
	}
	for _, m := range result {
		if !legacyResultKeys[m.key] && !absent(m.raw) {
			r.leave(join(p, m.key), "is not a known task result")
		}
	}
	return nil
}
