package app

import (
	"net"
	"sync"
)

// perAddrListener closes, as soon as they are accepted, connections from an
// address that already holds max open ones, so one client cannot take
// every slot of the listener's global cap (netutil.LimitListener, wrapped
// around this one, only counts connections this one lets through).
type perAddrListener struct {
	net.Listener
	max int

	mu   sync.Mutex
	open map[string]int // guarded by mu
}

func limitPerAddr(ln net.Listener, limit int) net.Listener {
	if limit <= 0 {
		return ln
	}
	return &perAddrListener{Listener: ln, max: limit, open: make(map[string]int)}
}

func (l *perAddrListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := remoteHost(c)
		l.mu.Lock()
		full := l.open[host] >= l.max
		if !full {
			l.open[host]++
		}
		l.mu.Unlock()
		if full {
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (l *perAddrListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

// remoteHost is the connection's peer address without the port.
func remoteHost(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// countedConn gives its slot back once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
