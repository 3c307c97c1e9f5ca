#!/usr/bin/env python3
"""Follows klingfan's event log and resumes after the last event it handled.

Each event is printed as one JSON line; its sequence is then saved in the
cursor file, so a restarted subscriber continues right after it: nothing
missed, nothing repeated. When the stream breaks it reconnects with
jittered backoff and resumes the same way.

    PYTHONPATH=gen python3 subscriber.py --server localhost:9090 \
        --token "$KLINGFAN_TOKEN" --cursor-file subscriber.cursor

Without a cursor file yet, it starts with new events (--from-beginning:
from the oldest retained one). A consumer group with one member is the
other way to resume: the server keeps the cursor (see consumer.py).
"""

import argparse
import json
import sys
import time

import grpc

import klingfan_example as kf
from kling.gateway.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc


def handle(event):
    """Does the work for one event; here it prints it as a JSON line."""
    print(json.dumps({
        "sequence": event.sequence,
        "id": event.id,
        "type": event_pb2.EventType.Name(event.type),
        "job_id": event.job.job_id,
    }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kf.add_connection_args(parser)
    parser.add_argument("--cursor-file", required=True, help="where the last handled sequence is kept")
    parser.add_argument("--from-beginning", action="store_true",
                        help="with no cursor yet, start from the oldest retained event instead of new ones")
    parser.add_argument("--job", action="append", default=[], help="only events about this job id (repeatable)")
    parser.add_argument("--max-events", type=int, default=0, help="exit after handling this many events (0: never)")
    args = parser.parse_args()

    channel, metadata = kf.connect(args)
    events = event_service_pb2_grpc.EventServiceStub(channel)
    cursor = kf.FileCursor(args.cursor_file)
    last = cursor.load()
    handled = attempt = 0
    while True:
        request = event_service_pb2.SubscribeRequest(job_ids=args.job)
        if last is not None:
            request.after_sequence = last
        elif args.from_beginning:
            request.from_beginning = True
        stream = events.Subscribe(request, metadata=metadata)
        try:
            head = dict(stream.initial_metadata()).get(kf.HEAD_SEQUENCE_HEADER)
            if head is not None:
                attempt = 0  # live: the next break starts the backoff over
                if last is None:
                    # Record where the stream went live, so a subscriber
                    # stopped before its first event resumes without a gap.
                    last = int(head)
                    cursor.save(last)
            for response in stream:
                handle(response.event)
                last = response.event.sequence
                cursor.save(last)
                handled += 1
                if args.max_events and handled >= args.max_events:
                    stream.cancel()
                    return 0
            # The server ended the stream without an error (a restart):
            # come back after a pause, like after an error.
            attempt += 1
            time.sleep(kf.backoff(attempt))
        except grpc.RpcError as err:
            attempt += 1
            print(f"stream ended: {err.code().name}: {err.details()}; reconnecting", file=sys.stderr)
            kf.sleep_before_retry(err, attempt)


if __name__ == "__main__":
    sys.exit(main())
