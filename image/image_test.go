package image_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/klingfan/klingfan/image"
	"github.com/klingfan/klingfan/internal/config"
)

// buildBinaries builds klingfan and klingctl as `make image` does (static,
// no -race), so the test checks the image of the real binaries.
func buildBinaries(t *testing.T) (klingfan, klingctl string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+string(os.PathSeparator), "./cmd/klingfan", "./cmd/klingctl")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "klingfan"), filepath.Join(dir, "klingctl")
}

// testCA stands in for the build machine's bundle when it has none.
func testCA(t *testing.T) string {
	if _, err := os.Stat(image.DefaultCASource); err == nil {
		return image.DefaultCASource
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImage(t *testing.T) {
	klingfan, klingctl := buildBinaries(t)
	ca := testCA(t)
	spec := image.Spec{Klingfan: klingfan, Klingctl: klingctl, CACerts: ca, Version: "test"}
	built, err := image.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "klingfan-image.tar")
	if err := image.WriteOCIArchive(archive, built, "klingfan:test"); err != nil {
		t.Fatal(err)
	}
	img := readArchive(t, archive, "klingfan:test")

	t.Run("manifest", func(t *testing.T) {
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
			t.Errorf("manifest %s with config %s: want OCI media types", m.MediaType, m.Config.MediaType)
		}
		if len(m.Layers) != 3 {
			t.Fatalf("%d layers, want 3 (base, klingctl, klingfan)", len(m.Layers))
		}
		for i, l := range m.Layers {
			if l.MediaType != types.OCILayer {
				t.Errorf("layer %d: media type %s, want %s", i, l.MediaType, types.OCILayer)
			}
		}
	})

	t.Run("config", func(t *testing.T) {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		uid, _, _ := strings.Cut(c.User, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("user %q: want a numeric non-root uid (so runAsNonRoot can check it)", c.User)
		}
		if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/klingfan" || strings.Join(c.Cmd, " ") != "serve" {
			t.Errorf("runs %v %v, want /usr/local/bin/klingfan serve", c.Entrypoint, c.Cmd)
		}
		if _, ok := c.Volumes[image.DataDir]; !ok {
			t.Errorf("volumes %v lack %s", c.Volumes, image.DataDir)
		}
		if !contains(c.Env, config.EnvName("data-dir")+"="+image.DataDir) {
			t.Errorf("env %v does not point the data directory at the volume", c.Env)
		}
		defaults, err := config.Parse(nil, func(string) (string, bool) { return "", false }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		for _, addr := range []string{defaults.HTTPAddr, defaults.GRPCAddr} {
			_, port, _ := net.SplitHostPort(addr)
			if _, ok := c.ExposedPorts[port+"/tcp"]; !ok {
				t.Errorf("exposed ports %v lack the default %s", c.ExposedPorts, addr)
			}
		}
		if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
			t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
		}
		if len(cf.History) != 3 || !strings.Contains(cf.History[0].CreatedBy, "CA certificates") {
			t.Errorf("history %+v: want one entry per layer", cf.History)
		}
	})

	files := flatten(t, img)
	t.Run("files", func(t *testing.T) {
		wantCA, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			path string
			mode int64
			uid  int
		}{
			{"usr/local/bin/klingfan", 0o755, 0},
			{"usr/local/bin/klingctl", 0o755, 0},
			{"etc/ssl/certs/ca-certificates.crt", 0o644, 0},
			{"etc/passwd", 0o644, 0},
			{"data", 0o700, image.UID},
			{"tmp", 0o1777, 0},
		} {
			f, ok := files[c.path]
			if !ok {
				t.Errorf("%s missing", c.path)
				continue
			}
			if f.hdr.Mode != c.mode || f.hdr.Uid != c.uid {
				t.Errorf("%s: mode %o uid %d, want %o uid %d", c.path, f.hdr.Mode, f.hdr.Uid, c.mode, c.uid)
			}
		}
		if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"].body, wantCA) {
			t.Error("the CA bundle is not the build machine's")
		}
		if !strings.Contains(string(files["etc/passwd"].body), ":"+strconv.Itoa(image.UID)+":") {
			t.Error("/etc/passwd does not name the klingfan user")
		}
	})

	t.Run("entrypoint runs", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "klingfan")
		if err := os.WriteFile(bin, files["usr/local/bin/klingfan"].body, 0o755); err != nil {
			t.Fatal(err)
		}
		ef, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("klingfan is dynamically linked; the image has no libc")
			}
		}
		ef.Close()
		if runtime.GOOS != "linux" {
			return
		}
		out, err := exec.Command(bin, "serve", "-h").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-http-addr") {
			t.Errorf("klingfan serve -h: %v\n%s", err, out)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		again, err := image.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d1, _ := built.Digest()
		d2, _ := again.Digest()
		if d1 != d2 {
			t.Errorf("two builds of the same binaries: %s and %s", d1, d2)
		}
	})
}

// readArchive opens an OCI archive as podman or skopeo would: untar the
// layout, find the image by its ref name.
func readArchive(t *testing.T, archive, ref string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != ref {
		t.Fatalf("index %+v: want one image named %s", im.Manifests, ref)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type tarFile struct {
	hdr  *tar.Header
	body []byte
}

// flatten reads the image's filesystem as a container runtime would see it.
func flatten(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]tarFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = tarFile{hdr: h, body: body}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
