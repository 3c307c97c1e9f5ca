package ingest

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
)

// Routes registers the ingest endpoints on mux:
// POST /webhooks/kling/{webhook_id} and POST /webhooks/klingai (the
// registration `default`).
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("/webhooks/kling/{webhook_id}", func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, r.PathValue("webhook_id"))
	})
	mux.HandleFunc("/webhooks/klingai", func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, registry.DefaultID)
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, webhookID string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed: use POST"})
		return
	}
	// Deadlines for this request only: the HTTP server has none, because it
	// also carries long-lived REST streams.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.reqTime))
	_ = rc.SetWriteDeadline(time.Now().Add(h.reqTime))
	// Everything refused before the signature is checked is refused the
	// same way for every id, registered or not, with the same limits and
	// the body read all the same: a stranger guessing ids must learn
	// nothing from the answer (see deliver for the rest).
	if err := h.precheck(r); err != nil {
		h.metrics.observe(h.label(webhookID), err.Outcome, nil, 0, nil)
		h.reject(w, r, webhookID, err)
		return
	}
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.metrics.observe(h.label(webhookID), OutcomeTooLarge, nil, 0, nil)
			h.reject(w, r, webhookID, tooLarge(h.maxBody))
			return
		}
		// The sender went away or the connection broke mid-body: nothing to answer.
		h.log.DebugContext(r.Context(), "reading ingest body", "webhook", webhookID, "error", err)
		return
	}
	res, err := h.Deliver(r.Context(), Delivery{
		WebhookID: webhookID,
		Header:    r.Header,
		Token:     token(r),
		Body:      body,
	})
	if err != nil {
		h.reject(w, r, webhookID, err)
		return
	}
	if h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.log.DebugContext(r.Context(), "delivery accepted", "webhook", webhookID, "sequence", res.Event.GetSequence(),
			"duplicate", res.Duplicate, "ignored", res.Ignored, "body", string(body))
	}
	if res.Ignored {
		writeJSON(w, http.StatusOK, receivedBody{Received: true, Ignored: true})
		return
	}
	// The common answer, written as bytes rather than encoded per request.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(receivedAnswer)
}

// token returns the `token` query parameter of the ingest URL. Most
// deliveries have no query at all, and parsing one allocates a map.
func token(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return r.URL.Query().Get("token")
}

// receivedAnswer is receivedBody{Received: true} as writeJSON encodes it.
var receivedAnswer = []byte(`{"received":true}` + "\n")

// readBody reads the whole body, at most limit bytes. A body that
// declares its length (precheck has refused one above limit) is read into
// a buffer of that size at once, rather than grown from 512 bytes by
// copying: net/http ends such a body at its Content-Length and reports a
// shorter one as io.ErrUnexpectedEOF.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	n := r.ContentLength
	if n <= 0 || n > limit {
		return io.ReadAll(body)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// precheck rejects what can be rejected before reading the body: a body
// that declares itself too large, or one that is not JSON. A missing
// Content-Type is tolerated, because the body is parsed as JSON anyway.
// It looks at the request alone, never at the registration it names.
func (h *Handler) precheck(r *http.Request) *Error {
	// The type Kling sends is taken without parsing (ParseMediaType
	// allocates a map per call).
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
			return &Error{Kind: ErrMediaType, Outcome: OutcomeMediaType, Message: "content type must be application/json"}
		}
	}
	if r.ContentLength > h.maxBody {
		return tooLarge(h.maxBody)
	}
	return nil
}

// label is webhookID as a metrics label: unregistered ids must not grow
// the label set.
func (h *Handler) label(webhookID string) string {
	if _, ok := h.regs.Get(webhookID); !ok {
		return "unknown"
	}
	return webhookID
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, webhookID string, err error) {
	var ie *Error
	if !errors.As(err, &ie) {
		ie = &Error{Kind: ErrUnavailable, Outcome: OutcomeUnavailable, Message: "event log unavailable, retry later", Err: err}
	}
	code := httpStatus(ie.Kind)
	switch {
	case ie.retryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ie.retryAfter.Seconds()))))
	case code == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	level := slog.LevelInfo
	if errors.Is(ie.Err, store.ErrStoreFull) {
		level = slog.LevelDebug // the store logs when it fills and when it has room again
	}
	attrs := []any{"webhook", webhookID, "status", code, "outcome", ie.Outcome, "reason", ie.Message, "remote", r.RemoteAddr}
	if webhookID == registry.DefaultID && ie.Outcome == OutcomeUnknown {
		// The usual first-run mistake; said here, never in the answer,
		// which must not tell a stranger which ids exist.
		attrs = append(attrs, "hint", "registration \"default\" is not configured: start klingfan with KLINGAI_WEBHOOK_SECRET set")
	}
	h.log.Log(r.Context(), level, "delivery rejected", attrs...)
	writeJSON(w, code, errorBody{Error: ie.Message})
}

// httpStatus is the one place a rejection's kind becomes an HTTP status.
func httpStatus(kind error) int {
	switch {
	case errors.Is(kind, ErrUnknownWebhook):
		return http.StatusUnauthorized // like a bad signature: see deliver
	case errors.Is(kind, ErrInactive):
		return http.StatusForbidden
	case errors.Is(kind, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(kind, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(kind, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(kind, ErrMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(kind, ErrRateLimited):
		return http.StatusTooManyRequests
	default:
		return http.StatusServiceUnavailable
	}
}

type errorBody struct {
	Error string `json:"error"`
}

type receivedBody struct {
	Received bool `json:"received"`
	Ignored  bool `json:"ignored,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
