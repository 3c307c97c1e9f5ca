package klingsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ServeConfig configures Serve: the simulator plus its listener and pace.
type ServeConfig struct {
	Sim Config
	// Addr is the listen address; it must be a loopback address.
	Addr string
	// Rate is how many tasks per second to create; 0 creates none.
	Rate float64
	// StepInterval is how often unfinished tasks move on a status.
	StepInterval time.Duration
	// Ready, when set, receives the bound address once listening.
	Ready func(addr string)
}

// Serve runs a simulator on a loopback address until ctx ends.
func Serve(ctx context.Context, c ServeConfig) error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("klingsim: listen address %q: %w", c.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("klingsim: listen address %q is not loopback; the simulator must not leave the machine", c.Addr)
	}
	sim, err := New(c.Sim)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("klingsim: listen: %w", err)
	}
	if c.Ready != nil {
		c.Ready(ln.Addr().String())
	}
	if c.StepInterval <= 0 {
		c.StepInterval = 2 * time.Second
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go sim.Run(ctx, c.Rate, c.StepInterval)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("klingsim: serve: %w", err)
	}
	sim.Flush()
	return nil
}
