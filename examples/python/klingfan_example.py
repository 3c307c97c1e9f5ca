"""Connection, cursor and reconnect helpers shared by the two examples.

The stubs under kling/gateway/v1 are generated from the repository's
proto/ directory (see README.md); nothing here is specific to one example.
"""

import os
import random
import tempfile
import time

import grpc

# The Subscribe response header that marks a stream live; its value is the
# sequence the stream starts after.
HEAD_SEQUENCE_HEADER = "klingfan-head-sequence"

# Failures worth reconnecting after: the server went away, restarted or
# asked the client to come back later. Anything else (a bad token, a resume
# point older than retention, an unknown group) is the caller's to fix.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def add_connection_args(parser):
    """Adds --server, --token and --tls to an argparse parser."""
    parser.add_argument("--server", default=os.environ.get("KLINGFAN_SERVER", "localhost:9090"),
                        help="gateway gRPC address host:port ($KLINGFAN_SERVER)")
    parser.add_argument("--token", default=os.environ.get("KLINGFAN_TOKEN", ""),
                        help="bearer token ($KLINGFAN_TOKEN)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (system roots)")


def connect(args):
    """Returns a channel and the call metadata that carries the token."""
    if args.tls:
        channel = grpc.secure_channel(args.server, grpc.ssl_channel_credentials())
    else:
        channel = grpc.insecure_channel(args.server)
    metadata = [("authorization", "Bearer " + args.token)] if args.token else []
    return channel, metadata


def backoff(attempt, low=0.1, high=10.0):
    """The wait before reconnect attempt n: exponential with full jitter, so
    many clients that lost the same server do not return in step."""
    delay = min(high, low * 2 ** max(attempt - 1, 0))
    return delay / 2 + random.uniform(0, delay / 2)


def sleep_before_retry(err, attempt):
    """Sleeps before reconnecting after err, or raises it when it is not
    worth a retry."""
    if err.code() not in RETRYABLE:
        raise err
    time.sleep(backoff(attempt))


class FileCursor:
    """The sequence of the last event handled, in one file in decimal.

    save writes a temporary file in the same directory, syncs it and renames
    it over the old one, so a crash leaves the old cursor or the new one,
    never a torn file.
    """

    def __init__(self, path):
        self.path = path

    def load(self):
        """Returns the saved sequence, or None on a first run."""
        try:
            with open(self.path, encoding="ascii") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def save(self, sequence):
        """Records sequence as handled."""
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(self.path) + ".")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{sequence}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
