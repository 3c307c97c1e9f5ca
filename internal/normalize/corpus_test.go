package normalize_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

// callbackCorpus is the contract corpus of Kling callbacks, hand-written
// from Kling's own API pages (see its SOURCES.md), shared with the other
// packages that speak Kling's contract.
const callbackCorpus = "../../testdata/kling/callbacks"

// corpusGoldens holds one golden Event per corpus file.
const corpusGoldens = "testdata/kling-callbacks"

// corpusFiles lists the corpus callbacks.
func corpusFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(callbackCorpus, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatalf("no callbacks under %s", callbackCorpus)
	}
	return files
}

// TestCorpusNothingLost normalizes every corpus callback the way ingest
// does and fails on any member of the input, at any depth, whose value is
// not in the event: neither mapped to a field nor kept in an unmapped_json
// or unmapped_outputs. Values are compared as a multiset, so a member whose
// value happens to equal another's still needs a place of its own.
func TestCorpusNothingLost(t *testing.T) {
	for _, path := range corpusFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := normalize.Normalize(body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			have := eventValues(t, out.Event)
			checkOutputTypes(t, body, out.Event.GetJob())
			for _, leaf := range jsonLeaves(t, "", body) {
				if outputType.MatchString(leaf.path) {
					continue // checked by checkOutputTypes
				}
				if !have.take(leaf.value) {
					t.Errorf("%s = %s is in no field of the event and not kept as unmapped", leaf.path, leaf.value)
				}
			}
		})
	}
}

// TestCorpusGolden pins what each corpus callback normalizes to.
func TestCorpusGolden(t *testing.T) {
	for _, path := range corpusFiles(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := normalize.Normalize(body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			golden := filepath.Join(corpusGoldens, name+goldenSuffix)
			if *update {
				if err := os.MkdirAll(corpusGoldens, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, marshalGolden(t, out.Event), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := readGolden(t, golden); !proto.Equal(out.Event, want) {
				t.Errorf("Normalize(%s) mismatch\n got: %s\nwant: %s\n(run with -update if the change is intended)",
					path, marshalGolden(t, out.Event), marshalGolden(t, want))
			}
		})
	}
}

// TestCorpusGoldenHasCallback catches goldens left behind by a renamed or
// deleted corpus file.
func TestCorpusGoldenHasCallback(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join(corpusGoldens, "*"+goldenSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		name := strings.TrimSuffix(filepath.Base(g), goldenSuffix)
		if _, err := os.Stat(filepath.Join(callbackCorpus, name+".json")); err != nil {
			t.Errorf("%s has no callback in %s", g, callbackCorpus)
		}
	}
}

// outputType matches the type member of a new-shape output, which maps
// to no field of its own: it chooses the list the output joins.
var outputType = regexp.MustCompile(`^\.outputs\[\d+\]\.type$`)

// outputLists names, for each output type the pages document, the list of
// Job an output of that type joins; an output of any other type must be
// in unmapped_outputs.
var outputLists = map[string]string{
	"video": "videos", "subbed_video": "videos", "product_video": "videos",
	"image": "images", "product_image": "images", "model_images": "images",
	"audio": "audios", "voice": "voices", "element": "elements",
	"srt": "subtitles", "ass": "subtitles",
}

// listLen returns the length of the Job list name.
func listLen(job *gatewayv1.Job, name string) int {
	switch name {
	case "videos":
		return len(job.GetVideos())
	case "images":
		return len(job.GetImages())
	case "audios":
		return len(job.GetAudios())
	case "voices":
		return len(job.GetVoices())
	case "elements":
		return len(job.GetElements())
	case "subtitles":
		return len(job.GetSubtitles())
	}
	return -1
}

// checkOutputTypes checks that the outputs of a new-shape callback landed
// in the lists their types name, as many in each as the body holds, and
// that every output of any other type is kept whole.
func checkOutputTypes(t *testing.T, body []byte, job *gatewayv1.Job) {
	t.Helper()
	var top struct {
		Outputs []struct {
			Type string `json:"type"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("outputs: %v", err)
	}
	want := map[string]int{}
	unknown := 0
	for _, o := range top.Outputs {
		if name, ok := outputLists[o.Type]; ok {
			want[name]++
		} else {
			unknown++
		}
	}
	for name, n := range want {
		if got := listLen(job, name); got != n {
			t.Errorf("%d outputs map to %s, the job has %d", n, name, got)
		}
	}
	if got := len(job.GetUnmappedOutputs()); got != unknown {
		t.Errorf("%d outputs of unknown types, %d unmapped outputs", unknown, got)
	}
}

// leaf is one scalar of a JSON document and where it is.
type leaf struct{ path, value string }

// jsonLeaves lists the non-empty scalars of the JSON document raw: strings
// by their content, numbers by their literal text, booleans as true or
// false. Nulls and empty strings carry nothing that could be lost.
func jsonLeaves(tb testing.TB, prefix string, raw []byte) []leaf {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("%s: %v", prefix, err)
	}
	var out []leaf
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(p+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(p+"["+strconv.Itoa(i)+"]", e)
			}
		case string:
			if v != "" {
				out = append(out, leaf{p, v})
			}
		case json.Number:
			out = append(out, leaf{p, v.String()})
		case bool:
			out = append(out, leaf{p, strconv.FormatBool(v)})
		}
	}
	walk(prefix, v)
	return out
}

// values is a multiset of the scalars an event holds. Numbers also count
// by value, since a duration "5.0" is held as 5 seconds.
type values struct {
	text map[string]int
	num  map[float64]int
}

// take removes one occurrence of v, reporting whether there was one.
func (vs values) take(v string) bool {
	if vs.text[v] > 0 {
		vs.text[v]--
		return true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && vs.num[f] > 0 {
		vs.num[f]--
		return true
	}
	return false
}

func (vs values) add(v string) {
	vs.text[v]++
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		vs.num[f]++
	}
}

// eventValues collects every scalar of ev, zero values included: strings,
// integers, booleans, timestamps as Unix milliseconds, durations as
// seconds, and the scalars inside every kept JSON (unmapped_json,
// unmapped_outputs[].json).
func eventValues(tb testing.TB, ev *gatewayv1.Event) values {
	tb.Helper()
	vs := values{text: map[string]int{}, num: map[float64]int{}}
	var walk func(m protoreflect.Message)
	scalar := func(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
		switch fd.Kind() {
		case protoreflect.StringKind:
			s := v.String()
			if fd.Name() == "unmapped_json" || (fd.Name() == "json" && fd.ContainingMessage().Name() == "UnmappedOutput") {
				if s != "" {
					for _, l := range jsonLeaves(tb, string(fd.Name()), []byte(s)) {
						vs.add(l.value)
					}
				}
				return
			}
			vs.add(s)
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint64Kind:
			vs.add(v.String())
		case protoreflect.BoolKind:
			vs.add(strconv.FormatBool(v.Bool()))
		case protoreflect.MessageKind:
			walk(v.Message())
		}
	}
	walk = func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *timestamppb.Timestamp:
			vs.add(strconv.FormatInt(x.AsTime().UnixMilli(), 10))
			return
		case *durationpb.Duration:
			vs.num[x.AsDuration().Seconds()]++
			return
		}
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			switch {
			case fd.IsList():
				list := m.Get(fd).List()
				for j := range list.Len() {
					scalar(fd, list.Get(j))
				}
			case fd.Kind() == protoreflect.MessageKind:
				if m.Has(fd) {
					walk(m.Get(fd).Message())
				}
			case fd.HasPresence() && !m.Has(fd):
			default:
				scalar(fd, m.Get(fd))
			}
		}
	}
	walk(ev.ProtoReflect())
	return vs
}

// corpusUnmapped lists the corpus callbacks that hold a member klingfan
// keeps without mapping, and the member; every other corpus callback must
// normalize completely.
var corpusUnmapped = map[string]string{
	// The page gives a multi-elements video the session_id of the editing
	// session it came from; no field of Video holds it.
	"videos_multi-elements.legacy.succeed.json": "task_result.videos[0].session_id is not a known member",
}

// TestCorpusComplete checks that Kling's documented callbacks normalize
// with nothing left unmapped, except where corpusUnmapped says why.
func TestCorpusComplete(t *testing.T) {
	for _, path := range corpusFiles(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := normalize.Normalize(body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			want, partial := corpusUnmapped[name]
			switch {
			case !partial && out.Incomplete != nil:
				t.Errorf("Incomplete = %v, want nil", out.Incomplete)
			case partial && (out.Incomplete == nil || !strings.Contains(out.Incomplete.Error(), want)):
				t.Errorf("Incomplete = %v, want it to mention %q", out.Incomplete, want)
			}
		})
	}
}
