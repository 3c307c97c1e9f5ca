package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/klingfan/klingfan/internal/verify"
)

// defaultIngestURL is the conventional ingest path of a local gateway (the
// registration "default", created from KLINGAI_WEBHOOK_SECRET).
const defaultIngestURL = "http://localhost:8080/webhooks/klingai"

// maxResponseBytes bounds how much of the gateway's answer post prints.
const maxResponseBytes = 1 << 20

func (c *client) postCommand() *cobra.Command {
	var (
		target, secret, scheme, webhookID string
	)
	cmd := &cobra.Command{
		Use:   "post FILE|-",
		Short: "Sign a payload and POST it to an ingest URL, the way Kling does",
		Long: `Sign a payload file (- reads stdin) with --secret (or $KLINGCTL_SECRET) using
--scheme, and POST it to --url as Kling would: Content-Type application/json,
the body byte for byte, and
  kling     X-Kling-Signature: sha256=<hex HMAC-SHA256(secret, body)>
  standard  webhook-id (fresh unless --webhook-id), webhook-timestamp (now) and
            webhook-signature: v1,<base64> with the whsec_ secret
  token     no signature; ?token=<secret> appended to the URL
Prints the HTTP status and the response body; exits 1 on a non-2xx answer.`,
		Example: `  klingctl example completed --format seed | klingctl post - --secret "$KLINGAI_WEBHOOK_SECRET"
  klingctl post callback.json --scheme standard --secret whsec_... --url http://localhost:8080/webhooks/kling/prod`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			sch, err := parseScheme(scheme)
			if err != nil {
				return err
			}
			if secret == "" {
				secret = c.env.getenv("KLINGCTL_SECRET")
			}
			if secret == "" {
				return usagef("post needs the secret: pass --secret or set KLINGCTL_SECRET")
			}
			u, err := url.Parse(target)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--url %q: want an http:// or https:// ingest URL", target)
			}
			body, err := c.readPayload(a[0])
			if err != nil {
				return err
			}
			signer, ok := verify.Lookup(sch)
			if !ok {
				return usagef("unknown signature scheme %q: use kling, standard or token", scheme)
			}
			key, err := signer.DecodeKey(secret)
			if err != nil {
				return usagef("the %s scheme cannot use this secret (a standard one is whsec_<base64>): %v", scheme, err)
			}
			id := webhookID
			if id == "" {
				id = newMessageID()
			}
			m := verify.Message{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
			signer.Sign(&m, key, id, c.env.now())
			if m.Token != "" {
				q := u.Query()
				q.Set("token", m.Token)
				u.RawQuery = q.Encode()
			}
			header := m.Header
			return c.post(cmd, u, header, body)
		},
	}
	f := cmd.Flags()
	// A gateway elsewhere than localhost:8080 is named once, for reconcile
	// and post alike, by $KLINGFAN_HTTP_URL.
	def := defaultIngestURL
	if base := c.env.getenv("KLINGFAN_HTTP_URL"); base != "" {
		def = strings.TrimRight(base, "/") + "/webhooks/klingai"
	}
	f.StringVar(&target, "url", def, "ingest URL to post to (default $KLINGFAN_HTTP_URL/webhooks/klingai when that is set)")
	f.StringVar(&secret, "secret", "", "signing secret or URL token (default $KLINGCTL_SECRET)")
	f.StringVar(&scheme, "scheme", "kling", "kling (X-Kling-Signature), standard (Standard Webhooks) or token (URL token)")
	f.StringVar(&webhookID, "webhook-id", "", "webhook-id header for the standard scheme (default: fresh); repeat one to test deduplication")
	return cmd
}

func (c *client) readPayload(name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(c.env.Stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading the payload: %w", err)
	}
	return b, nil
}

func (c *client) post(cmd *cobra.Command, u *url.URL, header http.Header, body []byte) error {
	hc, err := c.httpClient(c.timeout)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header
	req.Header.Set("User-Agent", "klingctl")
	resp, err := hc.Do(req)
	if err != nil {
		bare := *u
		bare.RawQuery, bare.User = "", nil // never echo a URL token
		return fmt.Errorf("cannot reach %s: %w", bare.String(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	out := c.env.Stdout
	fmt.Fprintf(out, "HTTP %s\n", resp.Status)
	if len(answer) > 0 {
		if _, err := out.Write(answer); err != nil {
			return err
		}
		if answer[len(answer)-1] != '\n' {
			fmt.Fprintln(out)
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the gateway answered %s", resp.Status)
	}
	return nil
}

// unwrapURLError drops the "Post <url>:" prefix, which would repeat the
// URL (and a token in it).
func unwrapURLError(err error) error {
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// newMessageID returns a fresh Standard Webhooks message id.
func newMessageID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "msg_" + hex.EncodeToString(b)
}
