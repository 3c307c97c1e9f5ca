package normalize

import (
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file reads the outputs the callback shapes share or nearly share:
// videos, images, audio tracks, voices, elements and charges.

// videoAt decodes a {id, url, watermark_url, duration} video object, the
// element shape shared by legacy task results and their parent_video.
func videoAt(raw string, path fieldPath) (*gatewayv1.Video, error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	return videoOf(o, path)
}

// videoOf reads a video from its decoded object o at path.
func videoOf(o object, path fieldPath) (v *gatewayv1.Video, err error) {
	v = &gatewayv1.Video{}
	if v.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if v.Url, err = o.str(path, "url"); err != nil {
		return nil, err
	}
	if v.WatermarkUrl, err = o.str(path, "watermark_url"); err != nil {
		return nil, err
	}
	if v.Duration, err = o.duration(path, "duration"); err != nil {
		return nil, err
	}
	return v, nil
}

// legacyImageAt decodes a legacy {index, url, watermark_url} image at path.
// Kling numbers images itself; position, the image's place among the
// task's images, is used only when it does not.
func legacyImageAt(raw string, path fieldPath, position int) (*gatewayv1.Image, error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	img := &gatewayv1.Image{Index: int32(min(position, 1<<31-1))}
	lit, ok, err := o.number(path, "index")
	if err != nil {
		return nil, err
	}
	if ok {
		n, err := smallInt(lit)
		if err != nil {
			return nil, malformed(join(path, "index"), "must be a non-negative integer, got %s", quote(lit))
		}
		img.Index = n
	}
	if img.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if img.Url, err = o.str(path, "url"); err != nil {
		return nil, err
	}
	if img.WatermarkUrl, err = o.str(path, "watermark_url"); err != nil {
		return nil, err
	}
	return img, nil
}

// v2ImageOf reads a new-shape image output, which has no index of its own:
// its position among the task's images is its index.
func v2ImageOf(o object, path fieldPath, position int) (img *gatewayv1.Image, err error) {
	img = &gatewayv1.Image{Index: int32(min(position, 1<<31-1))}
	if img.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if img.Url, err = o.str(path, "url"); err != nil {
		return nil, err
	}
	if img.WatermarkUrl, err = o.str(path, "watermark_url"); err != nil {
		return nil, err
	}
	if img.GroupId, err = o.id(path, "group_id"); err != nil {
		return nil, err
	}
	return img, nil
}

// audioKeys names the members of an audio track, which differ between the
// shapes (legacy `url_mp3`, new `mp3_url`) while meaning the same.
type audioKeys struct {
	mp3, wav, mp3Duration, wavDuration string
}

// audioAt decodes an audio track object at path.
func audioAt(raw string, path fieldPath, keys audioKeys) (*gatewayv1.Audio, error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	return audioOf(o, path, keys)
}

// audioOf reads an audio track whose members keys names.
func audioOf(o object, path fieldPath, keys audioKeys) (a *gatewayv1.Audio, err error) {
	a = &gatewayv1.Audio{}
	if a.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if a.Mp3Url, err = o.str(path, keys.mp3); err != nil {
		return nil, err
	}
	if a.WavUrl, err = o.str(path, keys.wav); err != nil {
		return nil, err
	}
	if a.Mp3Duration, err = o.duration(path, keys.mp3Duration); err != nil {
		return nil, err
	}
	if a.WavDuration, err = o.duration(path, keys.wavDuration); err != nil {
		return nil, err
	}
	return a, nil
}

// voiceOf reads a custom voice output.
func voiceOf(o object, path fieldPath) (v *gatewayv1.Voice, err error) {
	v = &gatewayv1.Voice{}
	if v.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if v.Name, err = o.str(path, "name"); err != nil {
		return nil, err
	}
	if v.Url, err = o.str(path, "url"); err != nil {
		return nil, err
	}
	if v.OwnedBy, err = o.str(path, "owned_by"); err != nil {
		return nil, err
	}
	if v.Status, err = o.str(path, "status"); err != nil {
		return nil, err
	}
	return v, nil
}

// elementOf reads an element output. Its inputs arrive as `materials[]` or
// `references[]` depending on the element type; both land in materials.
func elementOf(o object, path fieldPath) (e *gatewayv1.Element, err error) {
	e = &gatewayv1.Element{}
	if e.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if err := readStrings(o, path, []strField{{"name", &e.Name}, {"description", &e.Description}, {"element_type", &e.ElementType}, {"owned_by", &e.OwnedBy}, {"status", &e.Status}}); err != nil {
		return nil, err
	}
	if e.Tags, err = o.strs(path, "tags"); err != nil {
		return nil, err
	}
	for _, key := range [...]string{"materials", "references"} {
		items, err := o.array(path, key)
		if err != nil {
			return nil, err
		}
		for i, raw := range items {
			m, err := materialAt(raw, fieldPath{base: join(path, key), elem: i + 1})
			if err != nil {
				return nil, err
			}
			e.Materials = append(e.Materials, m)
		}
	}
	return e, nil
}

// materialAt decodes one {type, role, url, id, name, owned_by} input of an
// element.
func materialAt(raw string, path fieldPath) (m *gatewayv1.Material, err error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	m = &gatewayv1.Material{}
	if m.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if err := readStrings(o, path, []strField{{"type", &m.Type}, {"role", &m.Role}, {"url", &m.Url}, {"name", &m.Name}, {"owned_by", &m.OwnedBy}}); err != nil {
		return nil, err
	}
	return m, nil
}

// chargeAt decodes one new-shape billing entry. Amounts are decimal strings
// kept exactly as sent (numbers keep their literal text), so nothing is
// rounded on the way to an accounting system.
func chargeAt(raw string, path fieldPath) (c *gatewayv1.Charge, err error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	c = &gatewayv1.Charge{}
	if err := readStrings(o, path, []strField{{"charge_type", &c.ChargeType}, {"cash_type", &c.CashType}, {"currency", &c.Currency}, {"package_type", &c.PackageType}}); err != nil {
		return nil, err
	}
	if c.Amount, err = o.decimal(path, "amount"); err != nil {
		return nil, err
	}
	if c.ListPrice, err = o.decimal(path, "list_price"); err != nil {
		return nil, err
	}
	return c, nil
}

// strField pairs a member name with where its string goes.
type strField struct {
	key string
	dst *string
}

// readStrings reads several optional string members in order, so that the
// first bad one is the one an error names, every time.
func readStrings(o object, path fieldPath, fields []strField) (err error) {
	for _, f := range fields {
		if *f.dst, err = o.str(path, f.key); err != nil {
			return err
		}
	}
	return nil
}
