// Package image builds klingfan's container image without a container
// daemon and without pulling a base image: every file in it is written
// here, from the static binaries and the build machine's CA bundle, onto
// go-containerregistry's empty image. go-containerregistry is the library
// ko, crane and many registries are built on; unlike a Dockerfile it needs
// no daemon, and unlike a distroless base it adds nothing we did not put
// there, so the image holds two binaries, a CA bundle and a user.
//
// The output is reproducible: file times, the creation time and the order
// of everything are fixed (SOURCE_DATE_EPOCH, when set, dates the image),
// so the same binaries give the same image digest.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/klingfan/klingfan/deploy"
	"github.com/klingfan/klingfan/internal/config"
)

// The image's fixed layout.
const (
	// UID and GID run klingfan; the deployment files own the value.
	UID  = deploy.ImageUID
	GID  = deploy.ImageGID
	User = "klingfan"
	// DataDir is the volume that holds the embedded store and the
	// generated admin token.
	DataDir = "/data"
	// BinDir holds the binaries.
	BinDir = "/usr/local/bin"
	// CABundle is where Go's crypto/x509 looks first on Linux.
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
	// DefaultCASource is the Debian ca-certificates bundle of the build
	// machine, copied as is.
	DefaultCASource = "/etc/ssl/certs/ca-certificates.crt"
)

// Spec says what goes into the image.
type Spec struct {
	// Klingfan and Klingctl are paths to static (CGO_ENABLED=0) binaries
	// for OS/Arch.
	Klingfan string
	Klingctl string
	// CACerts is the PEM bundle to install; DefaultCASource when empty.
	CACerts string
	// OS and Arch of the binaries; linux and runtime.GOARCH when empty.
	OS   string
	Arch string
	// Created dates the image and every file in it; the Unix epoch when
	// zero, so that builds are reproducible.
	Created time.Time
	// Version is recorded in the org.opencontainers.image.version label.
	Version string
}

// Build assembles the image: a base layer (user, CA bundle, /data, /tmp),
// then klingctl, then klingfan, so a rebuild that changes only the server
// replaces only the last layer.
func Build(spec Spec) (v1.Image, error) {
	if spec.CACerts == "" {
		spec.CACerts = DefaultCASource
	}
	if spec.OS == "" {
		spec.OS = "linux"
	}
	if spec.Arch == "" {
		spec.Arch = runtime.GOARCH
	}
	mtime := spec.Created.UTC()
	if mtime.IsZero() {
		mtime = time.Unix(0, 0).UTC()
	}
	ca, err := os.ReadFile(spec.CACerts)
	if err != nil {
		return nil, fmt.Errorf("image: CA bundle: %w", err)
	}
	base := []entry{
		dir("etc/", 0o755, 0), dir("etc/ssl/", 0o755, 0), dir("etc/ssl/certs/", 0o755, 0),
		file("etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:klingfan:%s:/sbin/nologin\n", User, UID, GID, DataDir)),
		file("etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\n%s:x:%d:\n", User, GID)),
		// Go's resolver reads it to decide between /etc/hosts and DNS.
		file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
		file(CABundle[1:], 0o644, ca),
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: DataDir[1:] + "/", Mode: 0o700, Uid: UID, Gid: GID}},
		dir("tmp/", 0o1777, 0),
		dir("usr/", 0o755, 0), dir("usr/local/", 0o755, 0), dir(BinDir[1:]+"/", 0o755, 0),
	}
	var adds []mutate.Addendum
	for _, l := range []struct {
		what    string
		entries func() ([]entry, error)
	}{
		{"base: klingfan user, CA certificates from the build machine, " + DataDir, func() ([]entry, error) { return base, nil }},
		{"klingctl", binary(spec.Klingctl, "klingctl")},
		{"klingfan", binary(spec.Klingfan, "klingfan")},
	} {
		entries, err := l.entries()
		if err != nil {
			return nil, err
		}
		layer, err := newLayer(entries, mtime)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{
			Created: v1.Time{Time: mtime}, CreatedBy: "klingimage: " + l.what,
		}})
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("image: append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = spec.OS, spec.Arch
	cf.Created = v1.Time{Time: mtime}
	cf.Config, err = runConfig(spec.Version)
	if err != nil {
		return nil, err
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	return img, nil
}

// runConfig is how the image runs: `klingfan serve` as the klingfan user
// in /data, with the ports of the binary's own defaults.
func runConfig(version string) (v1.Config, error) {
	defaults, err := config.Parse(nil, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		return v1.Config{}, fmt.Errorf("image: default configuration: %w", err)
	}
	ports := map[string]struct{}{}
	for _, addr := range []string{defaults.HTTPAddr, defaults.GRPCAddr} {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return v1.Config{}, fmt.Errorf("image: default address %q: %w", addr, err)
		}
		ports[port+"/tcp"] = struct{}{}
	}
	if version == "" {
		version = "dev"
	}
	return v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{path.Join(BinDir, "klingfan")},
		Cmd:        []string{"serve"},
		WorkingDir: DataDir,
		Env: []string{
			"PATH=" + BinDir,
			config.EnvName("data-dir") + "=" + DataDir,
			"SSL_CERT_FILE=" + CABundle,
		},
		ExposedPorts: ports,
		Volumes:      map[string]struct{}{DataDir: {}},
		StopSignal:   "SIGTERM",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "klingfan",
			"org.opencontainers.image.description": "gRPC event fan-out gateway for Kling AI callbacks",
			"org.opencontainers.image.source":      "https://github.com/klingfan/klingfan",
			"org.opencontainers.image.version":     version,
		},
	}, nil
}

// entry is one file or directory of a layer.
type entry struct {
	hdr  tar.Header
	body []byte
}

func dir(name string, mode int64, uid int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid}}
}

func file(name string, mode int64, body []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
}

// binary reads an executable into an entry under BinDir.
func binary(src, name string) func() ([]entry, error) {
	return func() ([]entry, error) {
		body, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("image: %s binary: %w", name, err)
		}
		return []entry{file(path.Join(BinDir, name)[1:], 0o755, body)}, nil
	}
}

// newLayer writes entries as a tar stream, every time set to mtime and
// names in order, and wraps it as a gzip-compressed OCI layer.
func newLayer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries = slices.Clone(entries)
	// A directory's name is a prefix of its children's: it comes first.
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.hdr.Name, b.hdr.Name) })
	for _, e := range entries {
		h := e.hdr
		h.ModTime, h.Format = mtime, tar.FormatPAX
		if h.Uid == UID {
			h.Uname, h.Gname = User, User
		} else {
			h.Uname, h.Gname = "root", "root"
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("image: layer entry %s: %w", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("image: layer entry %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	return layer, nil
}
