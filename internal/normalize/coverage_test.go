package normalize_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

func readPayload(t *testing.T, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestTaskFamilies checks, field by field and independently of the golden
// files, that each task family's outputs land where consumers look for
// them, in both callback shapes.
func TestTaskFamilies(t *testing.T) {
	cases := []struct {
		payload string
		kind    gatewayv1.JobKind
		check   func(*gatewayv1.Job) bool
	}{
		{"legacy_text_to_audio_succeed", gatewayv1.JobKind_JOB_KIND_AUDIO, func(j *gatewayv1.Job) bool {
			a := j.GetAudios()
			return len(a) == 1 && strings.HasSuffix(a[0].GetMp3Url(), ".mp3") && strings.HasSuffix(a[0].GetWavUrl(), ".wav") &&
				a[0].GetMp3Duration().AsDuration().Milliseconds() == 3048
		}},
		{"v2_audio_succeeded", gatewayv1.JobKind_JOB_KIND_AUDIO, func(j *gatewayv1.Job) bool {
			a := j.GetAudios()
			return len(a) == 1 && strings.HasSuffix(a[0].GetMp3Url(), ".mp3") && a[0].GetWavDuration().AsDuration().Seconds() == 8
		}},
		{"legacy_video_to_audio_succeed", gatewayv1.JobKind_JOB_KIND_AUDIO, func(j *gatewayv1.Job) bool {
			return len(j.GetAudios()) == 1 && len(j.GetVideos()) == 1 && j.GetParentVideo().GetId() != ""
		}},
		{"v2_voice_succeeded", gatewayv1.JobKind_JOB_KIND_VOICE, func(j *gatewayv1.Job) bool {
			v := j.GetVoices()
			return len(v) == 1 && v[0].GetName() == "narrator-warm" && v[0].GetOwnedBy() == "user" && v[0].GetStatus() == "succeed"
		}},
		{"v2_element_materials_succeeded", gatewayv1.JobKind_JOB_KIND_ELEMENT, func(j *gatewayv1.Job) bool {
			e := j.GetElements()
			return len(e) == 1 && e[0].GetId() == "829836802793406551" && len(e[0].GetMaterials()) == 2 &&
				e[0].GetMaterials()[0].GetRole() == "frontal" && len(e[0].GetTags()) == 2
		}},
		{"v2_element_references_succeeded", gatewayv1.JobKind_JOB_KIND_ELEMENT, func(j *gatewayv1.Job) bool {
			e := j.GetElements()
			return len(e) == 1 && len(e[0].GetMaterials()) == 2 && e[0].GetMaterials()[1].GetType() == "voice" &&
				e[0].GetMaterials()[1].GetId() == "870001234567890102"
		}},
		{"v2_subtitle_succeeded", gatewayv1.JobKind_JOB_KIND_SUBTITLE, func(j *gatewayv1.Job) bool {
			s := j.GetSubtitles()
			return len(s) == 2 && s[0].GetFormat() == "srt" && s[1].GetFormat() == "ass" && len(j.GetVideos()) == 1 &&
				j.GetVideos()[0].GetDuration().AsDuration().Milliseconds() == 62500
		}},
		{"legacy_omni_image_series_succeed", gatewayv1.JobKind_JOB_KIND_IMAGE, func(j *gatewayv1.Job) bool {
			i := j.GetImages()
			return j.GetImageResultType() == "series" && len(i) == 3 && i[2].GetIndex() == 2 && i[2].GetWatermarkUrl() != "" &&
				j.WatermarkEnabled != nil && j.GetWatermarkEnabled()
		}},
		{"legacy_omni_image_single_succeed", gatewayv1.JobKind_JOB_KIND_IMAGE, func(j *gatewayv1.Job) bool {
			return j.GetImageResultType() == "single" && len(j.GetImages()) == 1 && j.WatermarkEnabled != nil && !j.GetWatermarkEnabled()
		}},
		{"v2_image_group_succeeded", gatewayv1.JobKind_JOB_KIND_IMAGE, func(j *gatewayv1.Job) bool {
			i := j.GetImages()
			return len(i) == 2 && i[1].GetIndex() == 1 && i[1].GetGroupId() == "g-870001234567890501"
		}},
		{"legacy_virtual_try_on_succeed", gatewayv1.JobKind_JOB_KIND_IMAGE, func(j *gatewayv1.Job) bool { return len(j.GetImages()) == 1 }},
		{"legacy_lip_sync_succeed", gatewayv1.JobKind_JOB_KIND_VIDEO, func(j *gatewayv1.Job) bool { return len(j.GetVideos()) == 1 }},
		{"legacy_effects_succeed", gatewayv1.JobKind_JOB_KIND_VIDEO, func(j *gatewayv1.Job) bool {
			return j.GetVideos()[0].GetWatermarkUrl() != "" && j.GetWatermarkEnabled()
		}},
		{"legacy_succeed_extend", gatewayv1.JobKind_JOB_KIND_VIDEO, func(j *gatewayv1.Job) bool { return j.GetParentVideo() != nil }},
		{"v2_console_test", gatewayv1.JobKind_JOB_KIND_UNSPECIFIED, func(j *gatewayv1.Job) bool {
			return j.GetStatus() == gatewayv1.JobStatus_JOB_STATUS_SUBMITTED
		}},
		{"kling_event_audio_completed", gatewayv1.JobKind_JOB_KIND_AUDIO, func(j *gatewayv1.Job) bool {
			return j.GetStatus() == gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
		}},
		{"kling_event_image_processing", gatewayv1.JobKind_JOB_KIND_IMAGE, func(j *gatewayv1.Job) bool { return j.GetProgressPercent() == 40 }},
		{"kling_event_completed", gatewayv1.JobKind_JOB_KIND_VIDEO, func(j *gatewayv1.Job) bool { return len(j.GetVideos()) == 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.payload, func(t *testing.T) {
			out, err := normalize.Normalize(readPayload(t, tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			if out.Incomplete != nil {
				t.Errorf("Incomplete = %v", out.Incomplete)
			}
			job := out.Event.GetJob()
			if job.GetKind() != tc.kind {
				t.Errorf("kind = %v, want %v", job.GetKind(), tc.kind)
			}
			if !tc.check(job) {
				t.Errorf("job = %v", job)
			}
		})
	}
}

// TestBilling checks both shapes' charges, and the legacy mapping: units
// become a "unit" charge and final_balance_deduction a "cash" charge whose
// amount is the quota.
func TestBilling(t *testing.T) {
	cases := []struct {
		payload string
		want    []*gatewayv1.Charge
	}{
		{"v2_audio_succeeded", []*gatewayv1.Charge{{ChargeType: "cash", CashType: "balance", Amount: "0.035", Currency: "USD", PackageType: "audio", ListPrice: "0.05"}}},
		{"v2_succeeded_video", []*gatewayv1.Charge{{ChargeType: "unit", Amount: "5", PackageType: "video"}}},
		{"legacy_text_to_audio_succeed", []*gatewayv1.Charge{{ChargeType: "unit", Amount: "0.2"}, {ChargeType: "cash", Amount: "0.028", ListPrice: "0.035"}}},
		{"v2_console_test", nil},
	}
	for _, tc := range cases {
		t.Run(tc.payload, func(t *testing.T) {
			ev, err := normalize.Parse(readPayload(t, tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			got := ev.GetJob().GetBilling()
			if len(got) != len(tc.want) {
				t.Fatalf("billing = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].String() != tc.want[i].String() {
					t.Errorf("billing[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestNormalizeIncomplete checks that what klingfan does not know or
// cannot read is reported and kept, never refused, and that it degrades
// per field: the header (id, status, external id, times, billing) and
// every other output survive one odd output or member.
func TestNormalizeIncomplete(t *testing.T) {
	header := func(ev *gatewayv1.Event) bool {
		j := ev.GetJob()
		return j.GetExternalId() == "ext-1" && j.GetCreatedAt().AsTime().UnixMilli() == 1781080778802 &&
			ev.GetOccurredAt().AsTime().UnixMilli() == 1781080794151 && len(j.GetBilling()) >= 1 &&
			j.GetBilling()[0].GetAmount() == "5"
	}
	const v2Head = `"id":"j1","status":"succeeded","external_id":"ext-1","create_time":1781080778802,"update_time":1781080794151,` +
		`"billing":[{"charge_type":"unit","amount":"5","package_type":"video"}]`
	const legacyHead = `"task_id":"j2","task_status":"succeed","task_info":{"external_task_id":"ext-1"},` +
		`"created_at":1781080778802,"updated_at":1781080794151,"final_unit_deduction":"5"`
	cases := []struct {
		name    string
		body    string
		want    error
		mention string
		check   func(*gatewayv1.Event) bool
	}{
		{"unknown output type", string(readPayload(t, "v2_unknown_output")), normalize.ErrIncomplete, `outputs[1].type "hologram"`,
			func(ev *gatewayv1.Event) bool {
				u := ev.GetJob().GetUnmappedOutputs()
				return len(ev.GetJob().GetVideos()) == 1 && len(u) == 1 && u[0].GetType() == "hologram" &&
					u[0].GetPath() == "outputs[1]" && strings.Contains(u[0].GetJson(), "holo/870001234567890701.glb")
			}},
		{"unknown legacy result", string(readPayload(t, "legacy_unknown_result")), normalize.ErrIncomplete, "task_result.models",
			func(ev *gatewayv1.Event) bool {
				return len(ev.GetJob().GetVideos()) == 1 && len(ev.GetJob().GetUnmappedOutputs()) == 1
			}},
		{"unreadable audio duration", `{` + v2Head + `,"outputs":[{"type":"audio","id":"a1","mp3_url":"https://x/a.mp3","mp3_duration":"long"}]}`,
			normalize.ErrMalformed, "outputs[0].mp3_duration",
			func(ev *gatewayv1.Event) bool {
				a := ev.GetJob().GetAudios()
				return header(ev) && len(a) == 1 && a[0].GetId() == "a1" && a[0].GetMp3Url() == "https://x/a.mp3" &&
					a[0].GetMp3Duration() == nil && a[0].GetUnmappedJson() == `{"mp3_duration":"long"}`
			}},
		{"element tag object with unknown members", `{` + v2Head + `,"outputs":[{"type":"element","id":"e1","tags":[{"id":1,"name":"人物","color":"red"}],"shape":"round"}]}`,
			normalize.ErrIncomplete, "",
			func(ev *gatewayv1.Event) bool {
				e := ev.GetJob().GetElements()
				return header(ev) && len(e) == 1 && e[0].GetId() == "e1" && len(e[0].GetTagDetails()) == 1 &&
					e[0].GetTagDetails()[0].GetId() == "1" && e[0].GetTagDetails()[0].GetUnmappedJson() == `{"color":"red"}` &&
					e[0].GetUnmappedJson() == `{"shape":"round"}`
			}},
		{"tags neither strings nor objects", `{` + v2Head + `,"outputs":[{"type":"element","id":"e1","tags":[1]}]}`,
			normalize.ErrMalformed, "outputs[0].tags[0]",
			func(ev *gatewayv1.Event) bool {
				e := ev.GetJob().GetElements()
				return header(ev) && len(e) == 1 && e[0].GetId() == "e1" && e[0].GetUnmappedJson() == `{"tags":[1]}`
			}},
		{"output not an object", `{` + v2Head + `,"outputs":["odd",{"type":"video","id":"v1"}]}`,
			normalize.ErrMalformed, "outputs[0]",
			func(ev *gatewayv1.Event) bool {
				u := ev.GetJob().GetUnmappedOutputs()
				return header(ev) && len(ev.GetJob().GetVideos()) == 1 && len(u) == 1 && u[0].GetJson() == `"odd"`
			}},
		{"unreadable header time", `{"id":"j1","status":"succeeded","external_id":"ext-1","create_time":"yesterday","update_time":1781080794151}`,
			normalize.ErrMalformed, "create_time",
			func(ev *gatewayv1.Event) bool {
				j := ev.GetJob()
				return j.GetExternalId() == "ext-1" && j.GetCreatedAt() == nil && j.GetUpdatedAt() != nil &&
					j.GetUnmappedJson() == `{"create_time":"yesterday"}`
			}},
		{"bad charge amount", `{` + legacyHead + `,"final_balance_deduction":{"quota":true,"list_price":"3.5"}}`,
			normalize.ErrMalformed, "final_balance_deduction.quota",
			func(ev *gatewayv1.Event) bool {
				b := ev.GetJob().GetBilling()
				return header(ev) && ev.GetType() == gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED && len(b) == 2 &&
					b[1].GetListPrice() == "3.5" && b[1].GetUnmappedJson() == `{"quota":true}`
			}},
		{"signed event with an unreadable and an unknown member", `{"event":"video.completed","timestamp":"2026-06-10T08:39:54Z",` +
			`"data":{"job_id":"k1","status":"completed","video_url":"https://x/v.mp4","duration":"five","seed":7}}`,
			normalize.ErrMalformed, "data.duration",
			func(ev *gatewayv1.Event) bool {
				j := ev.GetJob()
				return j.GetJobId() == "k1" && ev.GetOccurredAt() != nil && len(j.GetVideos()) == 1 &&
					j.GetVideos()[0].GetUrl() == "https://x/v.mp4" && j.GetVideos()[0].GetDuration() == nil &&
					j.GetUnmappedJson() == `{"data":{"duration":"five","seed":7}}`
			}},
		{"unknown header and task_info members", `{"task_id":"j2","task_status":"succeed","request_id":"r-9","task_info":{"external_task_id":"ext-1","seed":7}}`,
			normalize.ErrIncomplete, "",
			func(ev *gatewayv1.Event) bool {
				return ev.GetJob().GetExternalId() == "ext-1" &&
					ev.GetJob().GetUnmappedJson() == `{"request_id":"r-9","task_info":{"seed":7}}`
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := normalize.Normalize([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(out.Event) {
				t.Errorf("event = %v", out.Event)
			}
			if tc.mention == "" {
				return
			}
			if !errors.Is(out.Incomplete, tc.want) || !strings.Contains(out.Incomplete.Error(), tc.mention) {
				t.Fatalf("Incomplete = %v, want %v mentioning %q", out.Incomplete, tc.want, tc.mention)
			}
		})
	}
	if _, err := normalize.Normalize([]byte(`{"id":7.5,"status":"succeeded"}`)); !errors.Is(err, normalize.ErrMalformed) {
		t.Errorf("bad identifying field: err = %v, want ErrMalformed", err)
	}
}
