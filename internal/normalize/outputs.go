package normalize

import (
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file reads the outputs the callback shapes share or nearly share:
// videos, images, audio tracks, voices, elements and charges. Every reader
// maps what it knows and keeps the rest on the output (unmapped_json), so
// an output is never dropped for one odd member.

// videoOf reads the {id, url, watermark_url, duration} video m reads, the
// shape shared by both callback shapes and by the legacy parent_video.
func videoOf(m *members) *gatewayv1.Video {
	v := &gatewayv1.Video{}
	m.id("id", &v.Id)
	m.str("url", &v.Url)
	m.str("watermark_url", &v.WatermarkUrl)
	m.duration("duration", &v.Duration)
	v.UnmappedJson = m.unmapped()
	return v
}

// legacyImageOf reads a legacy {index, url, watermark_url} image. Kling
// numbers images itself; position, the image's place among the task's
// images, is used only when it does not. An AI multi-shot result
// ({index, url_1, url_2, url_3}) yields one image per url; see
// multiShotURLs.
func legacyImageOf(m *members, position int) []*gatewayv1.Image {
	img := &gatewayv1.Image{Index: int32(min(position, 1<<31-1))}
	lit, ok, err := m.o.number(m.path, "index")
	switch n, nerr := smallInt(lit); {
	case err != nil:
		m.fail(err, "index")
	case !ok:
	case nerr != nil:
		m.fail(malformed(join(m.path, "index"), "must be a non-negative integer, got %s", quote(lit)), "index")
	default:
		img.Index = n
		m.take("index")
	}
	m.id("id", &img.Id)
	m.str("url", &img.Url)
	m.str("watermark_url", &img.WatermarkUrl)
	shots := multiShotImages(m, img)
	rest := m.unmapped()
	if len(shots) == 0 {
		img.UnmappedJson = rest
		return []*gatewayv1.Image{img}
	}
	// The unmapped members belong to the result object all the shots came
	// from; they are kept once, on its first shot.
	shots[0].UnmappedJson = rest
	if img.GetUrl() != "" || img.GetWatermarkUrl() != "" || img.GetId() != "" {
		return append([]*gatewayv1.Image{img}, shots...)
	}
	return shots
}

// multiShotURLs are the members of an AI multi-shot result
// (`/v1/general/ai-multi-shot`, page image/common/subject-completion):
// `task_result.images[]` objects carry `url_1`, `url_2` and `url_3`
// instead of `url`. The page comments the result's `index` as "0-2" while
// showing one object with all three urls, which leaves open whether Kling
// sends one object or three; each url becomes an Image of its own with the
// object's index and its shot number, which reads right either way.
var multiShotURLs = [...]string{"url_1", "url_2", "url_3"}

// multiShotImages reads the multi-shot urls of the image object m reads,
// one Image per url present, copying base's index.
func multiShotImages(m *members, base *gatewayv1.Image) []*gatewayv1.Image {
	var shots []*gatewayv1.Image
	for i, key := range multiShotURLs {
		var url string
		if !readMember(m, object.str, key, &url) || url == "" {
			continue
		}
		shots = append(shots, &gatewayv1.Image{Index: base.Index, Url: url, Shot: int32(i + 1)})
	}
	return shots
}

// v2ImageOf reads a new-shape image output, which has no index of its own:
// its position among the task's images is its index.
func v2ImageOf(m *members, position int) *gatewayv1.Image {
	img := &gatewayv1.Image{Index: int32(min(position, 1<<31-1))}
	m.id("id", &img.Id)
	m.str("url", &img.Url)
	m.str("watermark_url", &img.WatermarkUrl)
	m.id("group_id", &img.GroupId)
	img.UnmappedJson = m.unmapped()
	return img
}

// audioKeys names the members of an audio track, which differ between the
// shapes (legacy `url_mp3`, new `mp3_url`) while meaning the same.
type audioKeys struct {
	mp3, wav, mp3Duration, wavDuration string
}

// audioOf reads an audio track whose members keys names. A text-to-speech
// track (`/v1/audio/tts`, page video/avatar/text-to-speech) has a single
// `url` and `duration` instead of per-encoding members; its example URL
// ends in .mp3, but the page does not name the encoding, so it stays in
// url rather than mp3_url.
func audioOf(m *members, keys audioKeys) *gatewayv1.Audio {
	a := &gatewayv1.Audio{}
	m.id("id", &a.Id)
	m.str(keys.mp3, &a.Mp3Url)
	m.str(keys.wav, &a.WavUrl)
	m.duration(keys.mp3Duration, &a.Mp3Duration)
	m.duration(keys.wavDuration, &a.WavDuration)
	m.str("url", &a.Url)
	m.duration("duration", &a.Duration)
	a.UnmappedJson = m.unmapped()
	return a
}

// voiceKeys names the members of a custom voice, which differ between the
// shapes (legacy `voice_id`, new `id`) while meaning the same.
type voiceKeys struct {
	id, name, url string
}

// voiceOf reads a custom voice whose members keys names.
func voiceOf(m *members, keys voiceKeys) *gatewayv1.Voice {
	v := &gatewayv1.Voice{}
	m.id(keys.id, &v.Id)
	m.str(keys.name, &v.Name)
	m.str(keys.url, &v.Url)
	m.str("owned_by", &v.OwnedBy)
	m.str("status", &v.Status)
	v.UnmappedJson = m.unmapped()
	return v
}

// elementOf reads a new-shape element output. Its inputs arrive as
// `materials[]` or `references[]` depending on the page; both land in
// materials. Tags arrive as objects ({id, name, description}, page
// get-started/callbacks); plain strings are accepted too.
func elementOf(m *members) *gatewayv1.Element {
	e := &gatewayv1.Element{}
	m.id("id", &e.Id)
	m.str("name", &e.Name)
	m.str("description", &e.Description)
	m.str("element_type", &e.ElementType)
	m.str("owned_by", &e.OwnedBy)
	m.str("status", &e.Status)
	for _, key := range [...]string{"materials", "references"} {
		for i, raw := range m.array(key) {
			e.Materials = append(e.Materials, materialAt(raw, fieldPath{base: join(m.path, key), elem: i + 1}, m.r))
		}
	}
	readTags(m, "tags", e)
	e.UnmappedJson = m.unmapped()
	return e
}

// readTags reads the tag array under key: string tags into e.Tags, object
// tags into e.TagDetails. An element of any other type is reported and
// kept, with the whole array, in the element's unmapped members.
func readTags(m *members, key string, e *gatewayv1.Element) {
	items, err := m.o.array(m.path, key)
	if err != nil {
		m.fail(err, key)
		return
	}
	var tags []string
	var details []*gatewayv1.ElementTag
	for i, raw := range items {
		p := fieldPath{base: join(m.path, key), elem: i + 1}
		switch kind(raw) {
		case '"':
			s, err := object{{key: key, raw: raw}}.str(m.path, key)
			if err != nil {
				m.fail(err, key)
				return
			}
			tags = append(tags, s)
		case '{':
			o, _ := decodeObject(raw, p, "")
			details = append(details, tagOf(o, p, m.r))
		default:
			m.fail(malformed(p.String(), "must be a string or an object, got %s", kindName(kind(raw))), key)
			return
		}
	}
	e.Tags = append(e.Tags, tags...)
	e.TagDetails = append(e.TagDetails, details...)
	m.take(key)
}

// tagOf reads one tag object: {id, name, description} (the id a number
// in the new shape, a string like "o_102" in the legacy element pages), or
// the {tag_id} a legacy element was created with.
func tagOf(o object, path fieldPath, r *report) *gatewayv1.ElementTag {
	t := &gatewayv1.ElementTag{}
	m := newMembers(o, path, r)
	m.id("id", &t.Id)
	if t.Id == "" {
		m.id("tag_id", &t.Id)
	}
	m.str("name", &t.Name)
	m.str("description", &t.Description)
	t.UnmappedJson = m.unmapped()
	return t
}

// legacyElementOf reads a legacy `task_result.elements[]` advanced custom
// element (page image/o1/elements, `/v1/general/advanced-custom-elements`).
// Its reference images, reference video and bound voice become materials
// with the roles the new shape gives the same inputs: the frontal image
// `frontal`, the others `refer`; the voice's trial audio is its url.
func legacyElementOf(m *members) *gatewayv1.Element {
	e := &gatewayv1.Element{}
	path, r := m.path, m.r
	m.id("element_id", &e.Id)
	m.str("element_name", &e.Name)
	m.str("element_description", &e.Description)
	m.str("reference_type", &e.ReferenceType)
	m.str("owned_by", &e.OwnedBy)
	m.str("status", &e.Status)
	if images, ok := m.object("element_image_list"); ok {
		p := at(join(path, "element_image_list"))
		sub := newMembers(images, p, r)
		front := &gatewayv1.Material{Type: "image", Role: "frontal"}
		if sub.str("frontal_image", &front.Url); front.GetUrl() != "" {
			e.Materials = append(e.Materials, front)
		}
		e.Materials = append(e.Materials, referMaterials(sub, "refer_images", "image_url", "image")...)
		m.nest("element_image_list", sub)
	}
	if videos, ok := m.object("element_video_list"); ok {
		sub := newMembers(videos, at(join(path, "element_video_list")), r)
		e.Materials = append(e.Materials, referMaterials(sub, "refer_videos", "video_url", "video")...)
		m.nest("element_video_list", sub)
	}
	if voice, ok := m.object("element_voice_info"); ok {
		sub := newMembers(voice, at(join(path, "element_voice_info")), r)
		mat := &gatewayv1.Material{Type: "voice", Role: "refer"}
		sub.id("voice_id", &mat.Id)
		sub.str("voice_name", &mat.Name)
		sub.str("trial_url", &mat.Url)
		sub.str("owned_by", &mat.OwnedBy)
		if mat.GetId() != "" || mat.GetUrl() != "" || mat.GetName() != "" {
			e.Materials = append(e.Materials, mat)
		}
		m.nest("element_voice_info", sub)
	}
	readTags(m, "tag_list", e)
	e.UnmappedJson = m.unmapped()
	return e
}

// referMaterials reads the array under key of m's object, whose elements
// are {urlKey: url} objects, into `refer` materials of type typ. An element
// with other members keeps them on its material.
func referMaterials(m *members, key, urlKey, typ string) []*gatewayv1.Material {
	var out []*gatewayv1.Material
	for i, raw := range m.array(key) {
		p := fieldPath{base: join(m.path, key), elem: i + 1}
		o, ok := decodeOutput(raw, p, m.r)
		if !ok {
			continue
		}
		mat := &gatewayv1.Material{Type: typ, Role: "refer"}
		sub := newMembers(o, p, m.r)
		sub.str(urlKey, &mat.Url)
		mat.UnmappedJson = sub.unmapped()
		out = append(out, mat)
	}
	return out
}

// materialAt decodes one {type, role, url, id, name, owned_by} input of a
// new-shape element.
func materialAt(raw string, path fieldPath, r *report) *gatewayv1.Material {
	mat := &gatewayv1.Material{}
	o, ok := decodeOutput(raw, path, r)
	if !ok {
		mat.UnmappedJson = raw
		return mat
	}
	m := newMembers(o, path, r)
	m.id("id", &mat.Id)
	m.str("type", &mat.Type)
	m.str("role", &mat.Role)
	m.str("url", &mat.Url)
	m.str("name", &mat.Name)
	m.str("owned_by", &mat.OwnedBy)
	mat.UnmappedJson = m.unmapped()
	return mat
}

// chargeOf reads one new-shape billing entry. Amounts are decimal strings
// kept exactly as sent (numbers keep their literal text), so nothing is
// rounded on the way to an accounting system.
func chargeOf(m *members) *gatewayv1.Charge {
	c := &gatewayv1.Charge{}
	m.str("charge_type", &c.ChargeType)
	m.str("cash_type", &c.CashType)
	m.str("currency", &c.Currency)
	m.str("package_type", &c.PackageType)
	m.decimal("amount", &c.Amount)
	m.decimal("list_price", &c.ListPrice)
	c.UnmappedJson = m.unmapped()
	return c
}
