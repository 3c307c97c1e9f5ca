package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/klingfan/klingfan/deploy"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// object is the part of a Kubernetes object these tests read.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
	StringData map[string]string `json:"stringData"`
}

type workloadSpec struct {
	Replicas *int `json:"replicas"`
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec podSpec `json:"spec"`
	} `json:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	} `json:"volumeClaimTemplates"`
}

type podSpec struct {
	AutomountServiceAccountToken *bool `json:"automountServiceAccountToken"`
	SecurityContext              struct {
		RunAsNonRoot   *bool  `json:"runAsNonRoot"`
		RunAsUser      *int64 `json:"runAsUser"`
		RunAsGroup     *int64 `json:"runAsGroup"`
		SeccompProfile struct {
			Type string `json:"type"`
		} `json:"seccompProfile"`
	} `json:"securityContext"`
	Containers []container `json:"containers"`
	Volumes    []struct {
		Name string `json:"name"`
	} `json:"volumes"`
}

type container struct {
	Name string   `json:"name"`
	Args []string `json:"args"`
	Env  []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
	} `json:"envFrom"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	StartupProbe    *probe `json:"startupProbe"`
	ReadinessProbe  *probe `json:"readinessProbe"`
	LivenessProbe   *probe `json:"livenessProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `json:"drop"`
		} `json:"capabilities"`
	} `json:"securityContext"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

type serviceSpec struct {
	Selector map[string]string `json:"selector"`
	Ports    []struct {
		Name       string `json:"name"`
		Port       int    `json:"port"`
		TargetPort any    `json:"targetPort"`
	} `json:"ports"`
}

// readObjects parses every document of a YAML file.
func readObjects(t *testing.T, path string) []object {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []object
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind == "" {
			t.Fatalf("%s: a document without kind", path)
		}
		out = append(out, o)
	}
	return out
}

func decodeSpec(t *testing.T, o object, v any) {
	t.Helper()
	if err := json.Unmarshal(o.Spec, v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
}

func TestKubernetesManifests(t *testing.T) {
	srv := apptest.Start(t, "")
	for _, c := range []struct {
		dir      string
		kind     string
		external bool
	}{
		{"kubernetes/single", "StatefulSet", false},
		{"kubernetes/cluster", "Deployment", true},
	} {
		t.Run(c.dir, func(t *testing.T) {
			byKind := map[string][]object{}
			for _, f := range kustomizationResources(t, c.dir) {
				for _, o := range readObjects(t, filepath.Join(c.dir, f)) {
					byKind[o.Kind] = append(byKind[o.Kind], o)
				}
			}
			secrets := readObjects(t, filepath.Join(c.dir, "secret.example.yaml"))
			if len(byKind[c.kind]) != 1 {
				t.Fatalf("want one %s, have %d", c.kind, len(byKind[c.kind]))
			}
			var w workloadSpec
			decodeSpec(t, byKind[c.kind][0], &w)
			cfg, ctr := checkWorkload(t, w, secrets)
			checkProbesAnswer(t, srv, ctr)
			if c.external {
				if cfg.NATSURL == "" || w.Replicas == nil || *w.Replicas < 2 {
					t.Errorf("cluster mode: --nats-url %q with %v replicas, want an external cluster and several replicas", cfg.NATSURL, w.Replicas)
				}
				checkNATSValues(t, filepath.Join(c.dir, "nats-values.yaml"), cfg)
			} else {
				if cfg.NATSURL != "" || w.Replicas == nil || *w.Replicas != 1 {
					t.Errorf("single mode: want the embedded store and exactly one replica")
				}
				// The embedded store's data directory is the claimed volume.
				if len(w.VolumeClaimTemplates) != 1 || mountAt(ctr, cfg.DataDir) != w.VolumeClaimTemplates[0].Metadata.Name {
					t.Errorf("--data-dir %s is not on the StatefulSet's PersistentVolumeClaim", cfg.DataDir)
				}
			}
			checkServices(t, byKind["Service"], w, ctr)
		})
	}
}

// kustomizationResources lists the files a kustomization applies, and
// checks that it applies every manifest in its directory.
func kustomizationResources(t *testing.T, dir string) []string {
	t.Helper()
	var k struct {
		Resources []string `json:"resources"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" || strings.Contains(base, ".example.") || base == "nats-values.yaml" {
			continue
		}
		if !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not listed in %s/kustomization.yaml", base, dir)
		}
	}
	return k.Resources
}

// checkWorkload checks the pod against the binary: its arguments and
// environment parse as `klingfan serve` would parse them, the container
// ports are the listen addresses, the probes hit the health endpoints on
// the HTTP port, and the pod runs as the image's non-root user on a
// read-only root filesystem.
func checkWorkload(t *testing.T, w workloadSpec, secrets []object) (config.Config, container) {
	t.Helper()
	pod := w.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	for _, ef := range ctr.EnvFrom {
		if ef.SecretRef == nil {
			continue
		}
		found := false
		for _, s := range secrets {
			if s.Kind == "Secret" && s.Metadata.Name == ef.SecretRef.Name {
				found = true
				for k, v := range s.StringData {
					env[k] = v
				}
			}
		}
		if !found {
			t.Errorf("envFrom names Secret %q, which secret.example.yaml does not describe", ef.SecretRef.Name)
		}
	}
	for k := range env {
		if !knownEnv(k) {
			t.Errorf("environment variable %s is not one klingfan reads", k)
		}
	}
	if len(ctr.Args) == 0 || ctr.Args[0] != "serve" {
		t.Fatalf("args %v: want serve first", ctr.Args)
	}
	cfg, err := config.Parse(ctr.Args[1:], func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	if err != nil {
		t.Fatalf("klingfan would not start with these args: %v", err)
	}
	if cfg.AdminToken == "" || cfg.SecretKey == "" {
		t.Error("the admin token and the sealing key should come from the Secret")
	}

	ports := map[string]int{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := port(t, cfg.HTTPAddr); ports["http"] != want {
		t.Errorf("container port http %d, the server listens on %d", ports["http"], want)
	}
	if want := port(t, cfg.GRPCAddr); ports["grpc"] != want {
		t.Errorf("container port grpc %d, the server listens on %d", ports["grpc"], want)
	}
	for name, p := range map[string]*probe{"startup": ctr.StartupProbe, "readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if resolvePort(p.HTTPGet.Port, ports) != ports["http"] {
			t.Errorf("%s probe on port %v, not the HTTP port", name, p.HTTPGet.Port)
		}
	}
	if ctr.ReadinessProbe != nil && ctr.ReadinessProbe.HTTPGet != nil && ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe on %s, want /readyz (it fails while the log is unreachable)", ctr.ReadinessProbe.HTTPGet.Path)
	}
	if ctr.LivenessProbe != nil && ctr.LivenessProbe.HTTPGet != nil && ctr.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe on %s, want /healthz (a log outage must not restart the pod)", ctr.LivenessProbe.HTTPGet.Path)
	}
	if a := w.Template.Metadata.Annotations; a["prometheus.io/port"] != strconv.Itoa(ports["http"]) || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v do not point at the HTTP port's /metrics", a)
	}

	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != deploy.ImageUID || sc.RunAsGroup == nil || *sc.RunAsGroup != deploy.ImageGID {
		t.Errorf("pod security context: want runAsNonRoot and the image's user %d:%d", deploy.ImageUID, deploy.ImageGID)
	}
	if sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("seccomp profile %q, want RuntimeDefault", sc.SeccompProfile.Type)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("klingfan does not call the Kubernetes API: automountServiceAccountToken should be false")
	}
	csc := ctr.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("want a read-only root filesystem")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("want allowPrivilegeEscalation: false")
	}
	if !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities dropped %v, want ALL", csc.Capabilities.Drop)
	}
	// With a read-only root, the data directory must be a volume.
	if mountAt(ctr, cfg.DataDir) == "" {
		t.Errorf("--data-dir %s is not a mounted volume; the root filesystem is read-only", cfg.DataDir)
	}
	if !slices.Equal(labelsOf(w.Selector.MatchLabels), labelsOf(w.Template.Metadata.Labels)) {
		t.Errorf("selector %v does not match the pod labels %v", w.Selector.MatchLabels, w.Template.Metadata.Labels)
	}
	return cfg, ctr
}

// checkProbesAnswer asks a real server the probes' questions: each must
// answer 200 while the server is healthy.
func checkProbesAnswer(t *testing.T, srv *apptest.Server, ctr container) {
	t.Helper()
	for _, p := range []*probe{ctr.StartupProbe, ctr.ReadinessProbe, ctr.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue
		}
		resp, err := http.Get(srv.HTTPURL + p.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("probe path %s: the server answers %d", p.HTTPGet.Path, resp.StatusCode)
		}
	}
}

// checkServices checks that every Service selects the pods and targets a
// port the container has.
func checkServices(t *testing.T, services []object, w workloadSpec, ctr container) {
	t.Helper()
	names := map[string]int{}
	for _, p := range ctr.Ports {
		names[p.Name] = p.ContainerPort
	}
	covered := map[int]bool{}
	for _, o := range services {
		var s serviceSpec
		decodeSpec(t, o, &s)
		for k, v := range s.Selector {
			if w.Template.Metadata.Labels[k] != v {
				t.Errorf("Service %s selects %s=%s, which the pods do not carry", o.Metadata.Name, k, v)
			}
		}
		for _, p := range s.Ports {
			target := resolvePort(p.TargetPort, names)
			if target == 0 {
				t.Errorf("Service %s targets port %v, which the container does not have", o.Metadata.Name, p.TargetPort)
			}
			covered[target] = true
		}
	}
	for name, p := range names {
		if !covered[p] {
			t.Errorf("no Service exposes the %s port", name)
		}
	}
}

// checkNATSValues checks the NATS chart values against what klingfan
// asks of the cluster: enough JetStream nodes for --replicas, and a
// max_payload that fits an event of the largest body.
func checkNATSValues(t *testing.T, path string, cfg config.Config) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled bool `json:"enabled"`
			} `json:"jetstream"`
			Merge map[string]any `json:"merge"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if !v.Config.Cluster.Enabled || !v.Config.JetStream.Enabled || v.Config.Cluster.Replicas < cfg.Replicas {
		t.Errorf("NATS values: cluster %v with %d nodes, JetStream %v; klingfan wants %d replicas",
			v.Config.Cluster.Enabled, v.Config.Cluster.Replicas, v.Config.JetStream.Enabled, cfg.Replicas)
	}
	maxPayload, err := natsSize(v.Config.Merge["max_payload"])
	if err != nil {
		t.Fatalf("NATS values: max_payload: %v", err)
	}
	// As internal/app: an event holds the raw body and a normalized copy
	// of much of it, plus up to 64 KiB of the rest.
	if need := 2*cfg.MaxBodyBytes + 64<<10; maxPayload < need {
		t.Errorf("NATS max_payload %d is below the %d bytes an event of --max-body-bytes %d can take", maxPayload, need, cfg.MaxBodyBytes)
	}
}

// natsSize reads a NATS size such as `<< 4MB >>` (the chart's syntax for an
// unquoted value).
func natsSize(v any) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, errors.New("missing")
	}
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<<"), ">>"))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"MB", 1 << 20}, {"KB", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n * mult, err
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func resolvePort(p any, named map[string]int) int {
	switch v := p.(type) {
	case string:
		return named[v]
	case float64:
		for _, n := range named {
			if n == int(v) {
				return n
			}
		}
	}
	return 0
}

func mountAt(c container, path string) string {
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) == filepath.Clean(path) {
			return m.Name
		}
	}
	return ""
}

func labelsOf(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// knownEnv reports whether klingfan reads the variable: a flag's
// KLINGFAN_* equivalent, one of the secrets, or OpenTelemetry's.
func knownEnv(name string) bool {
	switch name {
	case "KLINGFAN_ADMIN_TOKEN", "KLINGFAN_SECRET_KEY", "KLINGAI_WEBHOOK_SECRET":
		return true
	}
	if strings.HasPrefix(name, "OTEL_") {
		return true
	}
	known := false
	_, _ = config.Parse([]string{"-h"}, func(k string) (string, bool) {
		if k == name {
			known = true
		}
		return "", false
	}, io.Discard)
	return known
}
