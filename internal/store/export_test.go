package store

// NATSPool returns the client's server pool, in the order it tries them,
// and the URL of the server it is connected to.
func NATSPool(s *Store) (pool []string, connected string) {
	return s.nc.Servers(), s.nc.ConnectedUrl()
}
