package normalize

import (
	"google.golang.org/protobuf/types/known/durationpb"

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
func videoOf(o object, path fieldPath) (*gatewayv1.Video, error) {
	v := &gatewayv1.Video{}
	m := members{o: o, path: path}
	m.id("id", &v.Id)
	m.str("url", &v.Url)
	m.str("watermark_url", &v.WatermarkUrl)
	m.duration("duration", &v.Duration)
	return orNil(v, m.err)
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
	m := members{o: o, path: path}
	m.id("id", &img.Id)
	m.str("url", &img.Url)
	m.str("watermark_url", &img.WatermarkUrl)
	return orNil(img, m.err)
}

// v2ImageOf reads a new-shape image output, which has no index of its own:
// its position among the task's images is its index.
func v2ImageOf(o object, path fieldPath, position int) (*gatewayv1.Image, error) {
	img := &gatewayv1.Image{Index: int32(min(position, 1<<31-1))}
	m := members{o: o, path: path}
	m.id("id", &img.Id)
	m.str("url", &img.Url)
	m.str("watermark_url", &img.WatermarkUrl)
	m.id("group_id", &img.GroupId)
	return orNil(img, m.err)
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
func audioOf(o object, path fieldPath, keys audioKeys) (*gatewayv1.Audio, error) {
	a := &gatewayv1.Audio{}
	m := members{o: o, path: path}
	m.id("id", &a.Id)
	m.str(keys.mp3, &a.Mp3Url)
	m.str(keys.wav, &a.WavUrl)
	m.duration(keys.mp3Duration, &a.Mp3Duration)
	m.duration(keys.wavDuration, &a.WavDuration)
	return orNil(a, m.err)
}

// voiceOf reads a custom voice output.
func voiceOf(o object, path fieldPath) (*gatewayv1.Voice, error) {
	v := &gatewayv1.Voice{}
	m := members{o: o, path: path}
	m.id("id", &v.Id)
	m.str("name", &v.Name)
	m.str("url", &v.Url)
	m.str("owned_by", &v.OwnedBy)
	m.str("status", &v.Status)
	return orNil(v, m.err)
}

// elementOf reads an element output. Its inputs arrive as `materials[]` or
// `references[]` depending on the element type; both land in materials.
func elementOf(o object, path fieldPath) (*gatewayv1.Element, error) {
	e := &gatewayv1.Element{}
	m := members{o: o, path: path}
	m.id("id", &e.Id)
	m.str("name", &e.Name)
	m.str("description", &e.Description)
	m.str("element_type", &e.ElementType)
	m.str("owned_by", &e.OwnedBy)
	m.str("status", &e.Status)
	m.strs("tags", &e.Tags)
	if m.err != nil {
		return nil, m.err
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
func materialAt(raw string, path fieldPath) (*gatewayv1.Material, error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	mat := &gatewayv1.Material{}
	m := members{o: o, path: path}
	m.id("id", &mat.Id)
	m.str("type", &mat.Type)
	m.str("role", &mat.Role)
	m.str("url", &mat.Url)
	m.str("name", &mat.Name)
	m.str("owned_by", &mat.OwnedBy)
	return orNil(mat, m.err)
}

// chargeAt decodes one new-shape billing entry. Amounts are decimal strings
// kept exactly as sent (numbers keep their literal text), so nothing is
// rounded on the way to an accounting system.
func chargeAt(raw string, path fieldPath) (*gatewayv1.Charge, error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	c := &gatewayv1.Charge{}
	m := members{o: o, path: path}
	m.str("charge_type", &c.ChargeType)
	m.str("cash_type", &c.CashType)
	m.str("currency", &c.Currency)
	m.str("package_type", &c.PackageType)
	m.decimal("amount", &c.Amount)
	m.decimal("list_price", &c.ListPrice)
	return orNil(c, m.err)
}

// members reads an object's optional members in order and stops at the
// first bad one (later reads do nothing), so that the member an error
// names is the same every time and each output's reader is one line a
// member.
type members struct {
	o    object
	path fieldPath
	err  error
}

func (m *members) id(key string, dst *string)      { readMember(m, object.id, key, dst) }
func (m *members) str(key string, dst *string)     { readMember(m, object.str, key, dst) }
func (m *members) strs(key string, dst *[]string)  { readMember(m, object.strs, key, dst) }
func (m *members) decimal(key string, dst *string) { readMember(m, object.decimal, key, dst) }
func (m *members) duration(key string, dst **durationpb.Duration) {
	readMember(m, object.duration, key, dst)
}

// readMember reads key with read into dst unless an earlier member failed.
func readMember[T any](m *members, read func(object, fieldPath, string) (T, error), key string, dst *T) {
	if m.err == nil {
		*dst, m.err = read(m.o, m.path, key)
	}
}

// orNil returns v, or nil when err is set, so that a half-read output
// never escapes with its error.
func orNil[T any](v *T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
