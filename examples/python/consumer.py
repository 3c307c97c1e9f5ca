#!/usr/bin/env python3
"""Consumes a klingfan consumer group, acknowledging each event it handles.

The members of a group share its events: run this several times (on one
machine or many) and each event goes to one of them. An event whose
handler succeeds is acknowledged and done for the whole group; one that
fails is rejected (nacked) and delivered again, to any member, after a
delay; an event never acknowledged comes back after the group's ack_wait.
The server keeps the group's position, so a restarted member needs no
cursor file.

    PYTHONPATH=gen python3 consumer.py --server localhost:9090 \
        --token "$KLINGFAN_TOKEN" --group thumbnailers

An admin creates the group first, e.g. `klingctl groups create --id thumbnailers`.
"""

import argparse
import json
import sys
import time

import grpc
from google.protobuf import duration_pb2

import klingfan_example as kf
from kling.gateway.v1 import consumer_group_service_pb2 as groups_pb2
from kling.gateway.v1 import consumer_group_service_pb2_grpc as groups_grpc
from kling.gateway.v1 import event_pb2


def handle(event, attempt):
    """Does the work for one event; here it prints it as a JSON line.
    Raising an exception rejects the event, so it is retried."""
    print(json.dumps({
        "sequence": event.sequence,
        "id": event.id,
        "type": event_pb2.EventType.Name(event.type),
        "job_id": event.job.job_id,
        "delivery_attempt": attempt,
    }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kf.add_connection_args(parser)
    parser.add_argument("--group", required=True, help="the consumer group id")
    parser.add_argument("--max-in-flight", type=int, default=16,
                        help="unacknowledged events the server hands this member at once")
    parser.add_argument("--max-events", type=int, default=0, help="exit after acknowledging this many events (0: never)")
    args = parser.parse_args()

    channel, metadata = kf.connect(args)
    groups = groups_grpc.ConsumerGroupServiceStub(channel)
    acked = attempt = 0
    while True:
        stream = groups.Consume(groups_pb2.ConsumeRequest(consumer_group_id=args.group,
                                                          max_in_flight=args.max_in_flight),
                                metadata=metadata)
        try:
            for delivery in stream:
                attempt = 0
                ack = groups_pb2.AckEventsRequest(consumer_group_id=args.group)
                try:
                    handle(delivery.event, delivery.delivery_attempt)
                    ack.ack_ids.append(delivery.ack_id)
                except Exception as err:  # a failed handler: retry the event later
                    print(f"event {delivery.event.sequence} failed: {err}", file=sys.stderr)
                    ack.nack_ids.append(delivery.ack_id)
                    ack.nack_delay.CopyFrom(duration_pb2.Duration(seconds=5))
                # A lost acknowledgement is not lost work: the event comes
                # back after ack_wait and is handled again.
                groups.AckEvents(ack, metadata=metadata, timeout=10)
                if ack.ack_ids:
                    acked += 1
                if args.max_events and acked >= args.max_events:
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
