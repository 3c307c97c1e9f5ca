// Package certpool loads the CA bundles that the server (client
// certificates) and klingctl (server certificates) trust, so both read and
// reject a bundle the same way.
package certpool

import (
	"crypto/x509"
	"fmt"
	"os"
)

// Load reads the PEM file at path into a pool. flag names the option the
// path came from, for the error message ("--ca", "--tls-client-ca").
func Load(flag, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate found", flag, path)
	}
	return pool, nil
}
