package cli_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestEventsListAndGet(t *testing.T) {
	srv := startServer(t, "")
	c := conn(srv)
	types := []string{"created", "processing", "completed"}
	bodies := make([]string, len(types))
	for i, typ := range types {
		bodies[i] = klingctl(t, "example", typ, "--job", "events-job").must(t).stdout
		klingctlWith(t, runOpts{stdin: bodies[i]}, "post", "-", "--url", srv.HTTPURL+"/webhooks/klingai", "--secret", klingSecret).must(t)
	}
	post(t, srv, "failed", "events-other")

	all := parseEvents(t, klingctl(t, with(c, "events", "list", "--job", "events-job", "--json")...).must(t).lines())
	if len(all) != 3 {
		t.Fatalf("listed %d events of the job, want 3", len(all))
	}
	seqs := sequences(all)

	list := []struct {
		name       string
		args       []string
		want       []uint64
		wantStderr string
	}{
		{name: "oldest first", args: nil, want: seqs},
		{name: "newest first", args: []string{"--newest-first"}, want: []uint64{seqs[2], seqs[1], seqs[0]}},
		{name: "limit", args: []string{"--limit", "2"}, want: seqs[:2], wantStderr: "More events"},
		{name: "one page of one", args: []string{"--page-size", "1"}, want: seqs[:1], wantStderr: "--page-token"},
		{name: "all pages", args: []string{"--page-size", "1", "--all"}, want: seqs},
		{name: "all pages with a limit", args: []string{"--page-size", "1", "--all", "--limit", "2"}, want: seqs[:2]},
		{name: "type filter by short name", args: []string{"--type", "processing"}, want: seqs[1:2]},
		{name: "type filter by enum name, repeated", args: []string{"--type", "EVENT_TYPE_VIDEO_CREATED", "--type", "video.completed"}, want: []uint64{seqs[0], seqs[2]}},
		{name: "webhook filter", args: []string{"--webhook", "nope"}, want: nil},
	}
	for _, tc := range list {
		t.Run("list/"+tc.name, func(t *testing.T) {
			r := klingctl(t, with(c, append([]string{"events", "list", "--job", "events-job", "--json"}, tc.args...)...)...).must(t)
			if got := sequences(parseEvents(t, r.lines())); !slices.Equal(got, tc.want) {
				t.Errorf("sequences %s, want %s", fmtSeqs(got), fmtSeqs(tc.want))
			}
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", r.stderr, tc.wantStderr)
			}
		})
	}

	t.Run("list/table", func(t *testing.T) {
		r := klingctl(t, with(c, "events", "list", "--job", "events-job")...).must(t)
		lines := r.lines()
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[3], "video.completed") || !strings.Contains(lines[3], ".mp4") {
			t.Errorf("unexpected table:\n%s", r.stdout)
		}
	})

	get := []struct {
		name  string
		args  []string
		check func(t *testing.T, r result)
	}{
		{name: "by sequence, text", args: []string{strconv.FormatUint(seqs[2], 10)}, check: func(t *testing.T, r result) {
			for _, want := range []string{"Sequence:", "events-job", "video.completed", "succeeded", "Webhook:", "default", "Video 1:"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("lacks %q:\n%s", want, r.stdout)
				}
			}
		}},
		{name: "by id, JSON", args: []string{all[1].GetId(), "--json"}, check: func(t *testing.T, r result) {
			if ev := parseEvents(t, r.lines())[0]; ev.GetSequence() != seqs[1] {
				t.Errorf("got sequence %d, want %d", ev.GetSequence(), seqs[1])
			}
		}},
		{name: "raw body, byte for byte", args: []string{strconv.FormatUint(seqs[0], 10), "--raw"}, check: func(t *testing.T, r result) {
			if r.stdout != bodies[0] {
				t.Errorf("raw body differs:\n got %q\nwant %q", r.stdout, bodies[0])
			}
		}},
		{name: "full view in JSON", args: []string{strconv.FormatUint(seqs[0], 10), "--json", "--view", "full"}, check: func(t *testing.T, r result) {
			if ev := parseEvents(t, r.lines())[0]; string(ev.GetRawBody()) != bodies[0] {
				t.Errorf("raw body differs: %q", ev.GetRawBody())
			}
		}},
	}
	for _, tc := range get {
		t.Run("get/"+tc.name, func(t *testing.T) {
			tc.check(t, klingctl(t, with(c, append([]string{"events", "get"}, tc.args...)...)...).must(t))
		})
	}

	t.Run("get/unknown sequence is NotFound", func(t *testing.T) {
		r := klingctl(t, with(c, "events", "get", "999999")...)
		if r.code != 1 || r.stderr != "klingctl: event not found (NOT_FOUND)\n" {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}
