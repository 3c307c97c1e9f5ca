package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// refNameAnnotation names the image inside an OCI layout, which is what
// `podman load`, `skopeo copy oci-archive:` and `docker load` read as its tag.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// WriteOCIArchive writes img, tagged ref, to dst as an OCI archive: a tar
// of an OCI image layout (oci-layout, index.json, blobs/). The file is
// written next to dst and renamed, so a failed build leaves no half archive.
func WriteOCIArchive(dst string, img v1.Image, ref string) (err error) {
	dir, err := os.MkdirTemp("", "klingimage-")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image: OCI layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: ref})); err != nil {
		return fmt.Errorf("image: OCI layout: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil { //nolint:gosec // G301: a build output directory such as bin/, not a secret
		return fmt.Errorf("image: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".klingimage-*.tar")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tarDir(tmp, dir); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	// CreateTemp makes it 0600; an image is not a secret.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { //nolint:gosec // G302: see above
		return fmt.Errorf("image: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// tarDir writes the tree under root to w in lexical order with fixed
// times and owners, so the archive is as reproducible as the image.
func tarDir(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(p) //nolint:gosec // G122: root is the private temporary directory layout.Write just filled
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	return nil
}
