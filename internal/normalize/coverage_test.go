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
// cannot read is reported, never refused, and that the known rest of the
// event survives an unknown output.
func TestNormalizeIncomplete(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    error
		mention string
		check   func(*gatewayv1.Event) bool
	}{
		{"unknown output type", string(readPayload(t, "v2_unknown_output")), normalize.ErrIncomplete, `outputs[1].type "hologram"`,
			func(ev *gatewayv1.Event) bool { return len(ev.GetJob().GetVideos()) == 1 }},
		{"unknown legacy result", string(readPayload(t, "legacy_unknown_result")), normalize.ErrIncomplete, "task_result.models",
			func(ev *gatewayv1.Event) bool { return len(ev.GetJob().GetVideos()) == 1 }},
		{"unreadable audio duration", `{"id":"j1","status":"succeeded","outputs":[{"type":"audio","mp3_duration":"long"}]}`,
			normalize.ErrMalformed, "outputs[0].mp3_duration",
			func(ev *gatewayv1.Event) bool {
				return ev.GetJob().GetJobId() == "j1" && len(ev.GetJob().GetAudios()) == 0
			}},
		{"bad charge amount", `{"task_id":"j2","task_status":"succeed","final_balance_deduction":{"quota":true}}`,
			normalize.ErrMalformed, "final_balance_deduction.quota",
			func(ev *gatewayv1.Event) bool { return ev.GetType() == gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED }},
		{"tags not strings", `{"id":"j3","status":"succeeded","outputs":[{"type":"element","tags":[1]}]}`,
			normalize.ErrMalformed, "outputs[0].tags[0]", func(*gatewayv1.Event) bool { return true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := normalize.Normalize([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(out.Incomplete, tc.want) || !strings.Contains(out.Incomplete.Error(), tc.mention) {
				t.Fatalf("Incomplete = %v, want %v mentioning %q", out.Incomplete, tc.want, tc.mention)
			}
			if !tc.check(out.Event) {
				t.Errorf("event = %v", out.Event)
			}
		})
	}
	if _, err := normalize.Normalize([]byte(`{"id":7.5,"status":"succeeded"}`)); !errors.Is(err, normalize.ErrMalformed) {
		t.Errorf("bad identifying field: err = %v, want ErrMalformed", err)
	}
}
