package app

import (
	"crypto/tls"

	"github.com/klingfan/klingfan/internal/config"
)

// loadTLS builds the listeners' TLS configuration, or nil without
// --tls-cert. (Stub.)
func loadTLS(cfg config.Config) (*tls.Config, error) { return nil, nil }
