package store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerLogger returns a nats-server logger that writes to log. It serves
// the embedded server here and the servers of the cluster test harness.
func ServerLogger(log *slog.Logger) server.Logger { return slogAdapter{log: log} }

// slogAdapter routes the embedded NATS server's log lines into klingfan's
// structured logger, so operators get one log stream in one format.
//
// The server's notices (its start-up banner, JetStream recovery statistics)
// are routine for klingfan and are logged at debug level; warnings and
// errors keep their level because they signal storage or resource trouble.
type slogAdapter struct {
	log *slog.Logger
}

func (a slogAdapter) logf(level slog.Level, format string, v []any) {
	if !a.log.Enabled(context.Background(), level) {
		return
	}
	a.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

// Noticef logs routine server notices at debug level.
func (a slogAdapter) Noticef(format string, v ...any) { a.logf(slog.LevelDebug, format, v) }

// Warnf logs server warnings.
func (a slogAdapter) Warnf(format string, v ...any) { a.logf(slog.LevelWarn, format, v) }

// Fatalf logs at error level and deliberately does not exit: the server
// reports the failure to its caller too, and klingfan decides how to stop.
func (a slogAdapter) Fatalf(format string, v ...any) { a.logf(slog.LevelError, format, v) }

// Errorf logs server errors.
func (a slogAdapter) Errorf(format string, v ...any) { a.logf(slog.LevelError, format, v) }

// Debugf logs server debug output; the server only emits it when debug
// logging is switched on, which klingfan does not do.
func (a slogAdapter) Debugf(format string, v ...any) { a.logf(slog.LevelDebug, format, v) }

// Tracef logs protocol traces, which klingfan never enables.
func (a slogAdapter) Tracef(format string, v ...any) { a.logf(slog.LevelDebug, format, v) }
