// Command klingimage writes klingfan's container image as an OCI archive
// from already built static binaries, with no container daemon and no base
// image (see package image). `make image` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/klingfan/klingfan/image"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "klingimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var spec image.Spec
	fs := flag.NewFlagSet("klingimage", flag.ContinueOnError)
	fs.StringVar(&spec.Klingfan, "klingfan", "bin/image/klingfan", "static klingfan binary")
	fs.StringVar(&spec.Klingctl, "klingctl", "bin/image/klingctl", "static klingctl binary")
	fs.StringVar(&spec.CACerts, "ca-certs", image.DefaultCASource, "PEM CA bundle to install (the build machine's Debian ca-certificates by default)")
	fs.StringVar(&spec.Arch, "arch", "", "architecture of the binaries (default: this machine's)")
	fs.StringVar(&spec.Version, "version", "dev", "version label")
	out := fs.String("o", "bin/klingfan-image.tar", "OCI archive to write")
	ref := fs.String("tag", "klingfan:dev", "name the archive gives the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// SOURCE_DATE_EPOCH is the reproducible-builds convention for dating
	// an artifact; without it the image is dated at the Unix epoch.
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", v, err)
		}
		spec.Created = time.Unix(secs, 0)
	}
	img, err := image.Build(spec)
	if err != nil {
		return err
	}
	if err := image.WriteOCIArchive(*out, img, *ref); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s, %s)\n", *out, *ref, digest)
	return nil
}
