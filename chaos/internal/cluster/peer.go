package cluster

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// natsClientPort is the nodes' client port (nodeConfig).
const natsClientPort = 4222

// ConnectedNode returns the index of the node replica j's NATS connection
// is to. It reads the replica's established TCP connections to a client
// port from /proc, so it asks nothing of klingfan or of the nodes, and it
// fails when the replica has no such connection (it is reconnecting) or
// has several.
func (c *Cluster) ConnectedNode(j int) (int, error) {
	r := c.Replicas[j]
	pid := r.pid()
	if pid == 0 {
		return -1, fmt.Errorf("%s is not running", r.Name)
	}
	peers, err := tcpPeers(pid, natsClientPort)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", r.Name, err)
	}
	if len(peers) != 1 {
		return -1, fmt.Errorf("%s has %d connections to a NATS node, want 1", r.Name, len(peers))
	}
	for i, n := range c.cfg.Lab.Nodes {
		if n.Addr == peers[0] {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%s is connected to %s, not a node of the lab", r.Name, peers[0])
}

// pid is the running process's id, 0 when it is not running.
func (p *Proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// tcpPeers returns the remote addresses of process pid's established IPv4
// TCP connections to port. `ip netns exec` execs the command in place, so
// pid is the program itself and /proc/PID/net shows its namespace's
// sockets, of which its descriptors pick its own.
func tcpPeers(pid, port int) ([]netip.Addr, error) {
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(proc, "fd"))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(proc, "fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	f, err := os.Open(filepath.Join(proc, "net", "tcp"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var peers []netip.Addr
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpEstablished || !inodes[fields[9]] {
			continue
		}
		addr, err := parseProcAddr(fields[2])
		if err != nil {
			return nil, err
		}
		if int(addr.Port()) == port {
			peers = append(peers, addr.Addr())
		}
	}
	return peers, sc.Err()
}

// tcpEstablished is TCP_ESTABLISHED in /proc/net/tcp's st column.
const tcpEstablished = "01"

// parseProcAddr parses /proc/net/tcp's "0100007F:1F90": the IPv4 address
// as the kernel's 32-bit word in host byte order, then the port, both in
// hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok || len(host) != 8 {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/tcp address %q", s)
	}
	b, err := hex.DecodeString(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/tcp address %q: %w", s, err)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/tcp port %q: %w", s, err)
	}
	var ip [4]byte
	binary.NativeEndian.PutUint32(ip[:], binary.BigEndian.Uint32(b))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(p)), nil
}
