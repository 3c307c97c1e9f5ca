package klingsim

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/verify"
)

// Faults are the shares (0..1) of callbacks the simulator mistreats.
type Faults struct {
	Drop      float64
	Duplicate float64
	Delay     float64
	Reorder   float64
	// MaxDelay bounds a delayed callback's delay; 2s when zero.
	MaxDelay time.Duration
}

func (f Faults) withDefaults() Faults {
	if f.MaxDelay == 0 {
		f.MaxDelay = 2 * time.Second
	}
	return f
}

// Config configures a Sim.
type Config struct {
	// AccessKey and SecretKey accept JWT bearer tokens; APIKey accepts a
	// static bearer token. Either or both may be set.
	AccessKey, SecretKey, APIKey string
	// CallbackURL receives callbacks; none are sent when empty.
	CallbackURL string
	// WebhookSecret ("whsec_...") signs callbacks with Standard Webhooks;
	// they go unsigned when empty.
	WebhookSecret string
	Faults        Faults
	// FailShare is the share of tasks that end failed instead of succeeded.
	FailShare float64
	// V2Share is the share of randomly created tasks that go to a family
	// of the newer APIs (new shape) rather than a legacy one.
	V2Share float64
	// Seed makes fault and outcome choices reproducible.
	Seed   uint64
	Now    func() time.Time
	Logger *slog.Logger
	// HTTPClient posts callbacks; a 10s-timeout client when nil.
	HTTPClient *http.Client
}

// Stats count what the simulator did with callbacks.
type Stats struct {
	Sent, Dropped, Duplicated, Delayed, Reordered, Failed int64
}

// Sim is a simulated Kling account.
type Sim struct {
	cfg  Config
	key  []byte
	http *http.Client

	mu      sync.Mutex
	rng     *rand.Rand
	tasks   map[string]*task
	order   []string // creation order
	next    int
	held    *callback      // a callback held back to be sent after the next one
	limited int            // requests still to answer with a rate limit
	queries map[string]int // single-task queries by task id

	wg    sync.WaitGroup
	stats struct{ sent, dropped, duplicated, delayed, reordered, failed atomic.Int64 }
}

// callback is one signed delivery ready to post.
type callback struct {
	id string
	// url is where it goes: the task's callback_url, else the configured
	// CallbackURL.
	url  string
	body []byte
}

// New returns a Sim.
func New(cfg Config) (*Sim, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Faults = cfg.Faults.withDefaults()
	s := &Sim{cfg: cfg, http: cfg.HTTPClient, tasks: map[string]*task{}, queries: map[string]int{}, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	if s.http == nil {
		s.http = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.WebhookSecret != "" {
		key, err := verify.DecodeStandardSecret(cfg.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("klingsim: webhook secret: %w", err)
		}
		s.key = key
	}
	return s, nil
}

// Create adds a task in family f, submitted now, and posts its first
// callback. It returns the task id, or an error when the corpus holds no
// answer for f (see Simulated).
func (s *Sim) Create(f klingfamily.Family, external string) (string, error) {
	return s.CreateWithCallback(f, external, "")
}

// MustCreate is Create for a family written in the code, such as a
// test's: it panics when the family is not simulated, which is a bug in
// the caller rather than bad input.
func (s *Sim) MustCreate(f klingfamily.Family, external string) string {
	id, err := s.Create(f, external)
	if err != nil {
		panic(err)
	}
	return id
}

// CreateWithCallback is Create for a task whose callbacks go to
// callbackURL, as the callback_url of a create request asks; the
// configured CallbackURL when empty.
func (s *Sim) CreateWithCallback(f klingfamily.Family, external, callbackURL string) (string, error) {
	if !Simulated(f) {
		return "", fmt.Errorf("klingsim: %s is not simulated: the query corpus holds no answer for it", f.Name)
	}
	s.mu.Lock()
	s.next++
	now := unixMilli(s.cfg.Now())
	t := &task{
		id: fmt.Sprintf("sim%08d", s.next), external: external, family: f, callback: callbackURL,
		status: StatusSubmitted, created: now, updated: now,
	}
	s.tasks[t.id] = t
	s.order = append(s.order, t.id)
	cb := s.callbackLocked(t)
	s.mu.Unlock()
	s.post(cb)
	return t.id, nil
}

// CreateRandom creates a task in a random simulated family, of the newer
// APIs with Config.V2Share.
func (s *Sim) CreateRandom() string {
	s.mu.Lock()
	v2 := s.rng.Float64() < s.cfg.V2Share
	var fams []klingfamily.Family
	for _, f := range klingfamily.All() {
		if Simulated(f) && (f.Shape == klingfamily.New) == v2 {
			fams = append(fams, f)
		}
	}
	f := fams[s.rng.IntN(len(fams))]
	s.mu.Unlock()
	return s.MustCreate(f, "") // f is simulated
}

// Step moves every unfinished task one status on (submitted → processing →
// succeed or failed), posting a callback for each change. It returns how
// many tasks moved.
func (s *Sim) Step() int {
	s.mu.Lock()
	var cbs []*callback
	now := unixMilli(s.cfg.Now())
	for _, id := range s.order {
		t := s.tasks[id]
		switch t.status {
		case StatusSubmitted:
			t.status = StatusProcessing
		case StatusProcessing:
			if s.rng.Float64() < s.cfg.FailShare {
				t.status = StatusFailed // the corpus's failed answer carries the reason
			} else {
				t.status = StatusSucceed
			}
		default:
			continue
		}
		t.updated = max(now, t.updated+1)
		cbs = append(cbs, s.callbackLocked(t))
	}
	s.mu.Unlock()
	for _, cb := range cbs {
		s.post(cb)
	}
	return len(cbs)
}

// Run creates rate tasks per second and steps every interval until ctx
// ends.
func (s *Sim) Run(ctx context.Context, rate float64, interval time.Duration) {
	step := time.NewTicker(interval)
	defer step.Stop()
	var create <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		create = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-create:
			s.CreateRandom()
		case <-step.C:
			s.Step()
		}
	}
}

// Flush sends a held-back callback and waits until every callback in
// flight has been posted.
func (s *Sim) Flush() {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	if held != nil {
		s.send(held)
	}
	s.wg.Wait()
}

// Stats returns the callback counters.
func (s *Sim) Stats() Stats {
	return Stats{
		Sent: s.stats.sent.Load(), Dropped: s.stats.dropped.Load(), Duplicated: s.stats.duplicated.Load(),
		Delayed: s.stats.delayed.Load(), Reordered: s.stats.reordered.Load(), Failed: s.stats.failed.Load(),
	}
}

// TaskStatus is a task's id and current status in its own API generation.
type TaskStatus struct {
	ID, Status string
	Family     klingfamily.Family
	V2         bool
}

// Tasks returns every task's current status, in creation order.
func (s *Sim) Tasks() []TaskStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TaskStatus, 0, len(s.order))
	for _, id := range s.order {
		t := s.tasks[id]
		out = append(out, TaskStatus{ID: t.id, Status: t.publicStatus(), Family: t.family, V2: t.v2()})
	}
	return out
}

// RateLimit makes the next n API requests fail with code 1302 and HTTP 429.
func (s *Sim) RateLimit(n int) {
	s.mu.Lock()
	s.limited = n
	s.mu.Unlock()
}

// SetFaults changes the fault shares of the callbacks posted from now on,
// so a demo or test can, say, lose every later callback of the tasks that
// exist.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	s.cfg.Faults = f.withDefaults()
	s.mu.Unlock()
}

// Queries returns how many single-task queries (GET {collection}/{id},
// GET /tasks?task_ids= and GET /solutions?task_ids=) asked for the task
// id, found or not.
func (s *Sim) Queries(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[id]
}

func (s *Sim) countQuery(ids ...string) {
	s.mu.Lock()
	for _, id := range ids {
		s.queries[id]++
	}
	s.mu.Unlock()
}

// Resend posts a task's current state again, fault-free: a late callback.
func (s *Sim) Resend(id string) error {
	s.mu.Lock()
	t, ok := s.tasks[id]
	var cb *callback
	if ok {
		cb = s.callbackLocked(t)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("klingsim: no task %q", id)
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.send(cb) }()
	s.wg.Wait()
	return nil
}

func (s *Sim) callbackLocked(t *task) *callback {
	url := t.callback
	if url == "" {
		url = s.cfg.CallbackURL
	}
	return &callback{id: "msg_" + t.id + "_" + t.status, url: url, body: t.body()}
}

// post applies the fault shares to one callback.
func (s *Sim) post(cb *callback) {
	if cb.url == "" {
		return
	}
	s.mu.Lock()
	f := s.cfg.Faults
	drop := s.rng.Float64() < f.Drop
	dup := s.rng.Float64() < f.Duplicate
	delay := time.Duration(0)
	if s.rng.Float64() < f.Delay {
		delay = time.Duration(s.rng.Int64N(int64(f.MaxDelay)) + 1)
	}
	var release *callback
	if !drop && s.rng.Float64() < f.Reorder && s.held == nil {
		s.held, cb = cb, nil
		s.stats.reordered.Add(1)
	} else if !drop {
		release, s.held = s.held, nil
	}
	s.mu.Unlock()
	if drop {
		s.stats.dropped.Add(1)
		return
	}
	if dup {
		s.stats.duplicated.Add(1)
	}
	if delay > 0 {
		s.stats.delayed.Add(1)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if delay > 0 {
			time.Sleep(delay) // simulated network delay, not test ordering
		}
		if cb != nil {
			s.send(cb)
			if dup {
				s.send(cb)
			}
		}
		if release != nil {
			s.send(release)
		}
	}()
}

// send posts one callback, signed when a secret is configured.
func (s *Sim) send(cb *callback) {
	req, err := http.NewRequest(http.MethodPost, cb.url, bytes.NewReader(cb.body))
	if err != nil {
		s.stats.failed.Add(1)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if s.key != nil {
		now := s.cfg.Now()
		req.Header.Set("webhook-id", cb.id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", verify.SignStandard(s.key, cb.id, now, cb.body))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.stats.failed.Add(1)
		s.cfg.Logger.Warn("callback failed", "error", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		s.stats.failed.Add(1)
		s.cfg.Logger.Warn("callback refused", "status", resp.StatusCode)
		return
	}
	s.stats.sent.Add(1)
}

// sortedByUpdate returns the tasks of family (or of the new API when v2),
// newest first, as the list endpoints order them.
func (s *Sim) sortedByUpdate(match func(*task) bool) []*task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*task
	for _, t := range s.tasks {
		if match(t) {
			c := *t
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].created != out[j].created {
			return out[i].created > out[j].created
		}
		return out[i].id > out[j].id
	})
	return out
}
