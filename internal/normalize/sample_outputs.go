package normalize

import (
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file holds what a completed sample returns, per job kind and shape.

// sampleKind describes how samples of one job kind look.
type sampleKind struct {
	// prefix is the signed event name's prefix ("audio" in
	// "audio.completed").
	prefix string
	// legacy reports whether Kling sends this kind in the legacy shape.
	legacy bool
	// pkg is the billing package the kind is charged to.
	pkg string
	// dir is the CDN directory of the kind's files.
	dir string
}

// sampleKinds lists the kinds samples exist for.
var sampleKinds = map[gatewayv1.JobKind]sampleKind{
	gatewayv1.JobKind_JOB_KIND_VIDEO:    {prefix: "video", legacy: true, pkg: "video", dir: "text2video"},
	gatewayv1.JobKind_JOB_KIND_IMAGE:    {prefix: "image", legacy: true, pkg: "image", dir: "images"},
	gatewayv1.JobKind_JOB_KIND_AUDIO:    {prefix: "audio", legacy: true, pkg: "audio", dir: "audio"},
	gatewayv1.JobKind_JOB_KIND_VOICE:    {prefix: "voice", legacy: true, pkg: "audio", dir: "voice"},
	gatewayv1.JobKind_JOB_KIND_ELEMENT:  {prefix: "element", legacy: true, pkg: "image", dir: "element"},
	gatewayv1.JobKind_JOB_KIND_SUBTITLE: {prefix: "subtitle", pkg: "video", dir: "solutions"},
}

// sampleCharge is what a sampled task cost, in the new shape's terms; the
// legacy shape carries its amount and list price as its balance deduction.
var sampleCharge = v2Charge{ChargeType: "cash", CashType: "balance", Amount: "0.28", Currency: "USD", ListPrice: "0.35"}

type legacyBalanceDeduction struct {
	Quota     string `json:"quota"`
	ListPrice string `json:"list_price"`
}

type legacyImage struct {
	Index        int    `json:"index"`
	URL          string `json:"url"`
	WatermarkURL string `json:"watermark_url,omitempty"`
}

type legacyAudio struct {
	ID          string `json:"id"`
	URLMP3      string `json:"url_mp3"`
	URLWAV      string `json:"url_wav"`
	DurationMP3 string `json:"duration_mp3"`
	DurationWAV string `json:"duration_wav"`
}

// legacyVoice is a `task_result.voices[]` custom voice (page
// video/2-6/voice-customization).
type legacyVoice struct {
	VoiceID   string `json:"voice_id"`
	VoiceName string `json:"voice_name"`
	TrialURL  string `json:"trial_url"`
	OwnedBy   string `json:"owned_by"`
}

// legacyElement is a `task_result.elements[]` advanced custom element
// (page image/o1/elements).
type legacyElement struct {
	ElementID          int64           `json:"element_id"`
	ElementName        string          `json:"element_name"`
	ElementDescription string          `json:"element_description"`
	ReferenceType      string          `json:"reference_type"`
	ElementImageList   legacyImageList `json:"element_image_list"`
	ElementVideoList   struct{}        `json:"element_video_list"`
	ElementVoiceInfo   struct{}        `json:"element_voice_info"`
	TagList            []legacyTag     `json:"tag_list"`
	OwnedBy            string          `json:"owned_by"`
	Status             string          `json:"status"`
}

type legacyImageList struct {
	FrontalImage string           `json:"frontal_image"`
	ReferImages  []legacyImageURL `json:"refer_images"`
}

type legacyImageURL struct {
	ImageURL string `json:"image_url"`
}

type legacyTag struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// v2Tag is a new-shape element tag: its id is a number.
type v2Tag struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// sampleCreator is the creator id Kling writes in owned_by for what a
// user made ("kling" is its own library).
const sampleCreator = "7265158418"

type v2Charge struct {
	ChargeType  string `json:"charge_type"`
	CashType    string `json:"cash_type,omitempty"`
	Amount      string `json:"amount"`
	Currency    string `json:"currency,omitempty"`
	PackageType string `json:"package_type,omitempty"`
	ListPrice   string `json:"list_price,omitempty"`
}

type v2Video struct {
	Type         string `json:"type"`
	ID           string `json:"id,omitempty"`
	URL          string `json:"url"`
	WatermarkURL string `json:"watermark_url,omitempty"`
	Duration     string `json:"duration"`
}

type v2Image struct {
	Type         string `json:"type"`
	URL          string `json:"url"`
	WatermarkURL string `json:"watermark_url"`
	GroupID      string `json:"group_id"`
}

type v2Audio struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	MP3URL      string `json:"mp3_url"`
	WAVURL      string `json:"wav_url"`
	MP3Duration string `json:"mp3_duration"`
	WAVDuration string `json:"wav_duration"`
}

type v2Voice struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	URL     string `json:"url"`
	OwnedBy string `json:"owned_by"`
	Status  string `json:"status"`
}

type v2Element struct {
	Type        string       `json:"type"`
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	ElementType string       `json:"element_type"`
	Materials   []v2Material `json:"materials"`
	OwnedBy     string       `json:"owned_by"`
	Status      string       `json:"status"`
	Tags        []v2Tag      `json:"tags"`
}

type v2Material struct {
	Type string `json:"type"`
	Role string `json:"role"`
	URL  string `json:"url"`
}

type v2File struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// outputID is the id of the sampled job's n-th output: distinct from the
// task id, so consumers do not conflate the two.
func (s sampleJob) outputID(n string) string {
	return s.jobID + "-" + n
}

// legacyResult is a completed legacy task_result for the sampled kind.
func (s sampleJob) legacyResult() *legacyTaskResult {
	switch s.kind {
	case gatewayv1.JobKind_JOB_KIND_IMAGE:
		return &legacyTaskResult{Images: []legacyImage{
			{Index: 0, URL: s.asset("-0.png"), WatermarkURL: s.asset("-0-wm.png")},
			{Index: 1, URL: s.asset("-1.png"), WatermarkURL: s.asset("-1-wm.png")},
		}}
	case gatewayv1.JobKind_JOB_KIND_AUDIO:
		return &legacyTaskResult{Audios: []legacyAudio{{
			ID: s.outputID("a0"), URLMP3: s.asset(".mp3"), URLWAV: s.asset(".wav"), DurationMP3: "5.016", DurationWAV: "5.0",
		}}}
	case gatewayv1.JobKind_JOB_KIND_VOICE:
		return &legacyTaskResult{Voices: []legacyVoice{{
			VoiceID: s.outputID("voice"), VoiceName: "Warm narrator", TrialURL: s.asset("-trial.mp3"), OwnedBy: sampleCreator,
		}}}
	case gatewayv1.JobKind_JOB_KIND_ELEMENT:
		return &legacyTaskResult{Elements: []legacyElement{{
			ElementID: 160, ElementName: "Ginger cat", ElementDescription: "An orange tabby with a white chest",
			ReferenceType: "image_refer", OwnedBy: sampleCreator, Status: "succeed",
			ElementImageList: legacyImageList{FrontalImage: s.asset("-front.png"), ReferImages: []legacyImageURL{{ImageURL: s.asset("-side.png")}}},
			TagList:          []legacyTag{{ID: "o_103", Name: "animal", Description: "Animal"}},
		}}}
	}
	return &legacyTaskResult{Videos: []legacyVideo{{ID: s.videoID(), URL: s.asset(".mp4"), Duration: sampleDuration}}}
}

// v2Outputs is a completed new-shape outputs list for the sampled kind.
func (s sampleJob) v2Outputs() []any {
	switch s.kind {
	case gatewayv1.JobKind_JOB_KIND_IMAGE:
		group := s.outputID("g0")
		return []any{
			v2Image{Type: "image", URL: s.asset("-0.png"), WatermarkURL: s.asset("-0-wm.png"), GroupID: group},
			v2Image{Type: "image", URL: s.asset("-1.png"), WatermarkURL: s.asset("-1-wm.png"), GroupID: group},
		}
	case gatewayv1.JobKind_JOB_KIND_AUDIO:
		return []any{v2Audio{Type: "audio", ID: s.outputID("a0"), MP3URL: s.asset(".mp3"), WAVURL: s.asset(".wav"), MP3Duration: "5.016", WAVDuration: "5.0"}}
	case gatewayv1.JobKind_JOB_KIND_VOICE:
		return []any{v2Voice{Type: "voice", ID: s.outputID("voice"), Name: "Warm narrator", URL: s.asset("-trial.mp3"), OwnedBy: sampleCreator, Status: "succeeded"}}
	case gatewayv1.JobKind_JOB_KIND_ELEMENT:
		return []any{v2Element{
			Type: "element", ID: s.outputID("element"), Name: "Ginger cat", Description: "An orange tabby with a white chest",
			ElementType: "multi_image_elements", OwnedBy: sampleCreator, Status: "succeeded",
			Tags:      []v2Tag{{ID: 3, Name: "animal", Description: "Animal"}},
			Materials: []v2Material{{Type: "image", Role: "frontal", URL: s.asset("-front.png")}, {Type: "image", Role: "refer", URL: s.asset("-side.png")}},
		}}
	case gatewayv1.JobKind_JOB_KIND_SUBTITLE:
		return []any{
			v2Video{Type: "subbed_video", URL: s.asset("-subbed.mp4"), Duration: sampleDuration},
			v2File{Type: "srt", URL: s.asset(".srt")},
			v2File{Type: "ass", URL: s.asset(".ass")},
		}
	}
	return []any{v2Video{Type: "video", ID: s.videoID(), URL: s.asset(".mp4"), WatermarkURL: s.asset("-watermark.mp4"), Duration: sampleDuration}}
}
