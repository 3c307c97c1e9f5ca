package cli_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// TestGroupsCommands drives a consumer group through create, get, list,
// consume (which acknowledges) and delete.
func TestGroupsCommands(t *testing.T) {
	srv := startServer(t, "")
	c := conn(srv)
	klingctl(t, with(c, "groups", "create", "--id", "cli-group", "--name", "CLI", "--types", "completed", "--from-beginning", "--ack-wait", "2m")...).must(t)
	post(t, srv, "video.completed", "job-g1")
	post(t, srv, "video.failed", "job-g2")
	post(t, srv, "video.completed", "job-g3")

	r := klingctl(t, with(c, "groups", "consume", "cli-group", "--count", "2", "--json")...).must(t)
	evs := parseEvents(t, r.lines())
	if len(evs) != 2 || evs[0].GetJob().GetJobId() != "job-g1" || evs[1].GetJob().GetJobId() != "job-g3" {
		t.Fatalf("consume printed %v, want the two completed events", r.lines())
	}

	got := klingctl(t, with(c, "groups", "get", "cli-group", "--json")...).must(t)
	cg := &gatewayv1.ConsumerGroup{}
	if err := protojson.Unmarshal([]byte(got.stdout), cg); err != nil {
		t.Fatalf("not a protojson ConsumerGroup: %v\n%s", err, got.stdout)
	}
	if cg.GetDisplayName() != "CLI" || cg.GetAckWait().AsDuration().String() != "2m0s" || cg.GetPending() != 0 {
		t.Errorf("group after consuming: %v", cg)
	}
	if l := klingctl(t, with(c, "groups", "list")...).must(t); !strings.Contains(l.stdout, "cli-group") {
		t.Errorf("list does not show the group:\n%s", l.stdout)
	}
	klingctl(t, with(c, "groups", "delete", "cli-group")...).must(t)
	if r := klingctl(t, with(c, "groups", "get", "cli-group")...); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("get after delete: exit %d, %s", r.code, r.stderr)
	}
}
