package console_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// groupID is the consumer group the groups page is tested with.
const groupID = "console-renders"

// groupAPI is the consumer-groups side of the test: the real
// ConsumerGroupService over gRPC, and members through the public client.
type groupAPI struct {
	t *testing.T
	c *client.Client
}

func newGroupAPI(t *testing.T, srv *apptest.Server) *groupAPI {
	t.Helper()
	c, err := client.Dial(context.Background(), srv.GRPC, client.WithInsecure(), client.WithToken(apptest.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &groupAPI{t: t, c: c}
}

func (g *groupAPI) get() *gatewayv1.ConsumerGroup {
	g.t.Helper()
	resp, err := g.c.ConsumerGroups().GetConsumerGroup(context.Background(), &gatewayv1.GetConsumerGroupRequest{Id: groupID})
	if err != nil {
		g.t.Fatal(err)
	}
	return resp.GetConsumerGroup()
}

func (g *groupAPI) deadLetters() []*gatewayv1.DeadLetter {
	g.t.Helper()
	resp, err := g.c.ConsumerGroups().ListDeadLetters(context.Background(), &gatewayv1.ListDeadLettersRequest{ConsumerGroupId: groupID, PageSize: 100})
	if err != nil {
		g.t.Fatal(err)
	}
	return resp.GetDeadLetters()
}

// member attaches a member through client.Consume that answers every event
// with handle, until the returned stop is called.
func (g *groupAPI) member(handle func(job string) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- g.c.Consume(ctx, groupID, func(_ context.Context, ev *gatewayv1.Event) error { return handle(ev.GetJob().GetJobId()) },
			client.WithRetryBackoff(client.Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}))
	}()
	return func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			g.t.Errorf("member ended with %v, want context.Canceled", err)
		}
	}
}

// counter is a JavaScript expression for the text of the group card's
// counter named name.
func counter(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-group=%q] .counter')].find((c) => c.querySelector(".muted")?.textContent === %q)?.querySelector(".n")?.textContent`, groupID, name)
}

// testGroupsPage drives the groups page against the real consumer-groups
// API: a group created through the API whose member nacks every event until
// max_deliveries moves them to the dead letters; the page shows the group's
// counters and its dead letters, Redrive (one, then all) gives them back to
// the group, which a member then receives, and Seek moves the group's
// position. Each step is checked through the API, not only on the page.
func testGroupsPage(t *testing.T, p *page, srv *apptest.Server) {
	api := newGroupAPI(t, srv)
	jobs := []string{"render-1", "render-2"}
	if _, err := api.c.ConsumerGroups().CreateConsumerGroup(context.Background(), &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: groupID,
		ConsumerGroup: &gatewayv1.ConsumerGroup{
			DisplayName: "Render workers", JobIds: jobs, MaxDeliveries: 2, AckWait: durationpb.New(time.Second),
		},
	}); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		postKling(t, srv, "video.completed", j, map[string]any{"video_url": "https://cdn.example.com/" + j + ".mp4"})
	}

	// A member that fails every event: after two deliveries each, both
	// events are dead letters.
	var (
		mu       sync.Mutex
		attempts = map[string]int{}
	)
	stop := api.member(func(job string) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[job]++
		return errors.New("renderer down")
	})
	apptest.Eventually(t, 20*time.Second, "two dead letters", func() bool { return api.get().GetDeadLettered() == 2 })
	stop()
	mu.Lock()
	for _, j := range jobs {
		if attempts[j] != 2 {
			t.Errorf("%s delivered %d times before it was dead-lettered, want max_deliveries = 2", j, attempts[j])
		}
	}
	mu.Unlock()
	dead := api.deadLetters()
	seqOf := map[string]uint64{}
	for _, d := range dead {
		seqOf[d.GetEvent().GetJob().GetJobId()] = d.GetSequence()
	}
	if len(dead) != 2 || seqOf[jobs[0]] == 0 || seqOf[jobs[1]] == 0 {
		t.Fatalf("dead letters %v, want one per job", dead)
	}
	first, second := strconv.FormatUint(seqOf[jobs[0]], 10), strconv.FormatUint(seqOf[jobs[1]], 10)

	p.open("/console/#/groups?token=" + apptest.AdminToken)
	p.waitFor("the group's card with its counters", counter("dead letters")+` === "2"`, 5*time.Second)
	if got := p.text(fmt.Sprintf("[data-group=%q] h3", groupID)); got != "Render workers "+groupID {
		t.Errorf("card title = %q", got)
	}
	for name, want := range map[string]string{"pending": "0", "awaiting ack": "0"} {
		if got := eval[string](p, counter(name)); got != want {
			t.Errorf("counter %s = %q, want %q", name, got, want)
		}
	}
	if txt := p.text(fmt.Sprintf("[data-group=%q] p.muted", groupID)); !containsAll(txt, "job render-1", "job render-2", "max deliveries 2", "ack wait 1s") {
		t.Errorf("group settings line = %q", txt)
	}

	p.click(fmt.Sprintf(`button[aria-label="Show dead letters of %s"]`, groupID))
	deadList := fmt.Sprintf(`[aria-label="Dead letters of %s"]`, groupID)
	p.waitFor("both dead letters listed", fmt.Sprintf(`document.querySelector('%s a[href="#/events/%s"]') && document.querySelector('%s a[href="#/events/%s"]')`, deadList, first, deadList, second), 5*time.Second)
	if got := p.text(deadList + " li"); !containsAll(got, "2 attempts") {
		t.Errorf("dead letter row = %q, want it to show the attempts", got)
	}

	// Redrive one: it leaves the dead letters and is the group's again.
	p.click(fmt.Sprintf(`button[aria-label="Redrive event %s"]`, first))
	p.waitFor("the redrive notice", fmt.Sprintf(`document.querySelector('[data-group=%q] .notice.ok')?.textContent === "Redrove 1 dead letter (#%s)."`, groupID, first), 5*time.Second)
	p.waitFor("one dead letter left on the page", fmt.Sprintf(`document.querySelectorAll('%s li').length === 1 && %s === "1"`, deadList, counter("dead letters")), 5*time.Second)
	if d := api.deadLetters(); len(d) != 1 || d[0].GetSequence() != seqOf[jobs[1]] {
		t.Errorf("dead letters after redriving #%s: %v", first, d)
	}
	if g := api.get(); g.GetDeadLettered() != 1 || g.GetPending() != 1 {
		t.Errorf("after redriving one: dead_lettered %d, pending %d; want 1 and 1", g.GetDeadLettered(), g.GetPending())
	}

	// Redrive all: the page says so, the API agrees, a member gets both.
	p.click(fmt.Sprintf(`button[aria-label="Redrive every dead letter of %s"]`, groupID))
	p.waitFor("no dead letters left", fmt.Sprintf(`document.querySelector('[data-group=%q]').textContent.includes("No dead letters.") && %s === "0"`, groupID, counter("dead letters")), 5*time.Second)
	if d := api.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters after Redrive all: %v", d)
	}
	var got []string
	stop = api.member(func(job string) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, job)
		return nil
	})
	apptest.Eventually(t, 20*time.Second, "a member to receive both redriven events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	})
	apptest.Eventually(t, 20*time.Second, "the group to be drained", func() bool {
		g := api.get()
		return g.GetPending() == 0 && g.GetAckPending() == 0 && g.GetDeadLettered() == 0
	})
	stop()
	mu.Lock()
	slices.Sort(got)
	if !slices.Equal(got, jobs) {
		t.Errorf("member received %v after the redrive, want %v", got, jobs)
	}
	mu.Unlock()

	// Seek after the first event: the second is pending again.
	form := fmt.Sprintf(`form[aria-label="Seek %s"]`, groupID)
	p.typeInto(form+" input", first)
	p.click(form + " button[type=submit]")
	p.waitFor("the seek notice and the pending counter", fmt.Sprintf(`document.querySelector('[data-group=%q] .notice.ok')?.textContent === "Moved the group's position." && %s === "1"`, groupID, counter("pending")), 5*time.Second)
	if g := api.get(); g.GetPending() != 1 {
		t.Errorf("after seeking past #%s: pending %d, want 1 (#%s)", first, g.GetPending(), second)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
