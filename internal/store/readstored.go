package store

import (
	"context"
	"errors"
)

// ReadStored is Read without decoding: it calls visit with the sequence
// and stored bytes (an Event without its sequence, as Append wrote it) of
// each event Read would return, in order, until visit returns false, limit
// events or about 4 MiB were visited, or the end of the log. It returns
// next as Read does. data is valid only during the call.
//
// Catch-up forwards these bytes to a subscriber as they are, reading the
// few fields its filter needs from the wire: decoding and encoding every
// replayed event was most of a catch-up's CPU.
func (s *Store) ReadStored(ctx context.Context, from uint64, limit int, webhookIDs, jobIDs []string, visit func(seq uint64, data []byte) bool) (next uint64, err error) {
	from = max(from, 1)
	if limit <= 0 {
		return from, nil
	}
	filters := filterSubjects(webhookIDs, jobIDs)
	// As in Read: a filtered read takes the last sequence first, so that
	// next can skip a non-matching tail without skipping a later match.
	var last uint64
	if filters != nil {
		st, err := s.state(ctx)
		if err != nil {
			return from, err
		}
		if from > st.last || st.msgs == 0 {
			return from, nil
		}
		last = st.last
	}
	var (
		lastSeen uint64
		visited  int
		size     int
	)
	end, err := s.scan(ctx, from, 0, limit, limit, filters, func(seq uint64, data []byte) bool {
		lastSeen = seq
		visited++
		size += len(data)
		return visit(seq, data) && visited < limit && size < maxReadBytes
	})
	if err != nil {
		// What was visited before a transient failure stands: the caller
		// resumes from next and sees no gap.
		if lastSeen > 0 && errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			return lastSeen + 1, nil
		}
		return from, err
	}
	next = from
	if lastSeen > 0 {
		next = lastSeen + 1
	}
	if end && filters != nil {
		next = max(next, last+1)
	}
	return next, nil
}
