#!/usr/bin/env node
// Creates a Kling task through klingfan and waits for its final state.
//
// klingfan fills in the callback URL and the external task id, signs the
// call with the account's credentials and records the job before it
// answers, so this service needs no Kling keys. The request id makes the
// create idempotent: a create that failed with UNAVAILABLE is sent again
// with the same id, and can never make a second task.
//
//   node creator.js --server localhost:9090 --token "$KLINGFAN_TOKEN" \
//       --endpoint /v1/videos/text2video --body '{"prompt":"a cat"}' \
//       --webhook kling --request-id order-1234
//
// It prints the job as created, then its final state, as JSON lines, and
// exits 0 when the job succeeded.
'use strict';

const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const kf = require('./klingfan');

const TERMINAL = new Set(['JOB_STATUS_SUCCEEDED', 'JOB_STATUS_FAILED', 'JOB_STATUS_CANCELLED']);

// create sends CreateJob until it succeeds or fails with something other
// than UNAVAILABLE; resending the same request id is what makes that safe.
async function create(jobs, request, metadata) {
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await new Promise((resolve, reject) => {
        jobs.CreateJob(request, metadata, (err, res) => (err ? reject(err) : resolve(res)));
      });
      return response.job_state;
    } catch (err) {
      if (err.code !== 14 /* UNAVAILABLE */) {
        throw err;
      }
      await kf.waitBeforeRetry(err, attempt);
    }
  }
}

// waitFinal follows the job's events from right after the state it has,
// so no event slips between the two, until one is final.
function waitFinal(events, state, metadata) {
  return new Promise((resolve, reject) => {
    const call = events.Subscribe({
      job_ids: [state.job_id],
      webhook_ids: [state.webhook_id],
      after_sequence: state.last_sequence,
    }, metadata);
    call.on('data', (response) => {
      const job = response.event.job;
      if (job && TERMINAL.has(job.status)) {
        call.cancel();
        resolve({ job_id: job.job_id, status: job.status, sequence: response.event.sequence });
      }
    });
    call.on('error', (err) => {
      if (err.code !== 1 /* CANCELLED */) {
        reject(err);
      }
    });
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      ...kf.connectionOptions,
      endpoint: { type: 'string' },
      body: { type: 'string' },
      'request-id': { type: 'string', default: '' },
      webhook: { type: 'string', default: '' },
    },
  });
  if (!values.endpoint || !values.body) {
    throw new Error('--endpoint and --body are required');
  }
  const requestId = values['request-id'] || 'req_' + crypto.randomUUID();
  const v1 = kf.loadServices();
  const { creds, metadata } = kf.connect(values);
  const jobs = new v1.JobService(values.server, creds);
  const events = new v1.EventService(values.server, creds);

  const state = await create(jobs, {
    endpoint: values.endpoint,
    body: kf.toStruct(JSON.parse(values.body)),
    request_id: requestId,
    webhook_id: values.webhook,
  }, metadata);
  const job = state.job;
  console.log(JSON.stringify({ job_id: state.job_id, status: job.status, sequence: state.last_sequence, request_id: requestId }));
  const final = TERMINAL.has(job.status)
    ? { job_id: state.job_id, status: job.status, sequence: state.last_sequence }
    : await waitFinal(events, state, metadata);
  console.log(JSON.stringify(final));
  jobs.close();
  events.close();
  process.exitCode = final.status === 'JOB_STATUS_SUCCEEDED' ? 0 : 1;
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
