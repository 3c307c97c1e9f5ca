package cli

import (
	"net/http"
	"time"
)

// httpClient is the HTTP client of klingctl's plain-HTTP commands (post,
// reconcile): the same TLS settings as the gRPC commands, and timeout.
// Callers release its idle connections with CloseIdleConnections.
func (c *client) httpClient(timeout time.Duration) (*http.Client, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}
