package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// streamsPerClientProcess bounds the idle streams one child process holds,
// so a 100,000-stream run spreads its client side over several processes
// (each with its own heap and file descriptors) as real clients would be.
const streamsPerClientProcess = 25_000

// streamClients are the child processes holding the memory scenario's
// streams.
type streamClients struct {
	stopped bool
	cmds    []*exec.Cmd
	stdins  []io.Closer
	cancel  context.CancelFunc
}

// startStreamClients opens n streams over conns connections from as many
// child processes as streamsPerClientProcess asks for, and returns once
// every child reported its streams live. stop must be called in any case.
func startStreamClients(ctx context.Context, addr string, n, conns int) (*streamClients, error) {
	exe, err := os.Executable()
	if err != nil {
		return &streamClients{cancel: func() {}}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	c := &streamClients{cancel: cancel}
	procs := (n + streamsPerClientProcess - 1) / streamsPerClientProcess
	ready := make(chan error, procs)
	for i := range procs {
		// Spread streams and connections evenly; every child gets at
		// least one connection.
		pn := n/procs + boolInt(i < n%procs)
		pc := max(1, conns/procs+boolInt(i < conns%procs))
		cmd := exec.CommandContext(cctx, exe, StreamClientsCommand, //nolint:gosec // G204: this very binary, with arguments the harness built
			"-addr", addr, "-n", strconv.Itoa(pn), "-conns", strconv.Itoa(pc))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return c, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return c, err
		}
		if err := cmd.Start(); err != nil {
			return c, fmt.Errorf("bench: start stream clients: %w", err)
		}
		c.cmds, c.stdins = append(c.cmds, cmd), append(c.stdins, stdin)
		go func() {
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err == nil && !strings.HasPrefix(line, "ready") {
				err = fmt.Errorf("said %q", line)
			}
			ready <- err
		}()
	}
	for range procs {
		if err := <-ready; err != nil {
			return c, fmt.Errorf("bench: stream clients did not get ready: %w", err)
		}
	}
	return c, nil
}

// stop closes the children's stdin (each exits when it closes) and waits.
// Later calls do nothing.
func (c *streamClients) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	for _, in := range c.stdins {
		in.Close()
	}
	for _, cmd := range c.cmds {
		_ = cmd.Wait()
	}
	c.cancel()
}

// rss sums the children's resident sets.
func (c *streamClients) rss() int64 {
	var total int64
	for _, cmd := range c.cmds {
		if v, err := vmRSS(strconv.Itoa(cmd.Process.Pid)); err == nil {
			total += v
		}
	}
	return total
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
