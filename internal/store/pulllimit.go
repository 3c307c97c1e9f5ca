package store

import "github.com/nats-io/nats.go/jetstream"

// pullLimit bounds what one read consumer asks the server for: n messages,
// and no more bytes per pull request than the largest message needs (the
// server cannot deliver a message larger than a request's byte limit).
// With only a message count, a catch-up read of 1,024 events of 200 KiB
// pulled 200 MiB into the client to return the first 4 MiB (maxReadBytes),
// so a thousand streams catching up at once could pull hundreds of
// gigabytes; with the byte limit a read holds a few megabytes whatever the
// size of events.
func (s *Store) pullLimit(n uint64) jetstream.PullMessagesOpt {
	limit := max(maxReadBytes, int(s.nc.MaxPayload())+appendHeaderRoom)
	return jetstream.PullMaxMessagesWithBytesLimit(int(n), limit)
}
