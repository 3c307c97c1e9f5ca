#!/usr/bin/env python3
"""Creates a Kling task through klingfan and waits for its final state.

klingfan fills in the callback URL and the external task id, signs the
call with the account's credentials and records the job before it
answers, so this service needs no Kling keys. The request id makes the
create idempotent: a create that failed with UNAVAILABLE is sent again
with the same id, and can never make a second task.

    PYTHONPATH=gen python3 creator.py --server localhost:9090 \
        --token "$KLINGFAN_TOKEN" --endpoint /v1/videos/text2video \
        --body '{"prompt": "a cat"}' --webhook kling --request-id order-1234

It prints the job as created, then its final state, as JSON lines, and
exits 0 when the job succeeded.
"""

import argparse
import json
import sys
import time
import uuid

import grpc
from google.protobuf import struct_pb2

import klingfan_example as kf
from kling.gateway.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc, job_service_pb2, job_service_pb2_grpc

TERMINAL = {event_pb2.JOB_STATUS_SUCCEEDED, event_pb2.JOB_STATUS_FAILED, event_pb2.JOB_STATUS_CANCELLED}


def create(jobs, request, metadata):
    """Sends CreateJob until it succeeds or fails with something other than
    UNAVAILABLE; resending the same request id is what makes that safe."""
    attempt = 0
    while True:
        try:
            return jobs.CreateJob(request, metadata=metadata).job_state
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            attempt += 1
            time.sleep(kf.backoff(attempt))


def wait_final(events, state, metadata):
    """Follows the job's events from right after the state it has, so no
    event slips between the two, until one is final."""
    request = event_service_pb2.SubscribeRequest(
        job_ids=[state.job_id], webhook_ids=[state.webhook_id], after_sequence=state.last_sequence)
    stream = events.Subscribe(request, metadata=metadata)
    try:
        for response in stream:
            job = response.event.job
            if job.status in TERMINAL:
                return job.status, response.event.sequence
    finally:
        stream.cancel()
    raise RuntimeError("the stream ended before the job finished")


def line(job_id, status, sequence, **extra):
    return json.dumps({"job_id": job_id, "status": event_pb2.JobStatus.Name(status), "sequence": sequence, **extra})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kf.add_connection_args(parser)
    parser.add_argument("--endpoint", required=True, help="Kling's create path, e.g. /v1/videos/text2video")
    parser.add_argument("--body", required=True, help="Kling's request body, a JSON object")
    parser.add_argument("--request-id", default="", help="idempotency key (default: a fresh one)")
    parser.add_argument("--webhook", default="", help="the registration Kling calls back (default: default)")
    args = parser.parse_args()

    body = struct_pb2.Struct()
    body.update(json.loads(args.body))
    request_id = args.request_id or "req_" + uuid.uuid4().hex
    channel, metadata = kf.connect(args)
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    events = event_service_pb2_grpc.EventServiceStub(channel)

    state = create(jobs, job_service_pb2.CreateJobRequest(
        endpoint=args.endpoint, body=body, request_id=request_id, webhook_id=args.webhook), metadata)
    print(line(state.job_id, state.job.status, state.last_sequence, request_id=request_id), flush=True)
    status, sequence = state.job.status, state.last_sequence
    if status not in TERMINAL:
        status, sequence = wait_final(events, state, metadata)
    print(line(state.job_id, status, sequence), flush=True)
    channel.close()
    return 0 if status == event_pb2.JOB_STATUS_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
