#!/usr/bin/env node
// Follows klingfan's event log and resumes after the last event it handled.
//
// Each event is printed as one JSON line; its sequence is then saved in the
// cursor file, so a restarted subscriber continues right after it: nothing
// missed, nothing repeated. When the stream breaks it reconnects with
// jittered backoff and resumes the same way.
//
//   node subscriber.js --server localhost:9090 --token "$KLINGFAN_TOKEN" \
//       --cursor-file subscriber.cursor
//
// Without a cursor file yet, it starts with new events (--from-beginning:
// from the oldest retained one). A consumer group with one member is the
// other way to resume: the server keeps the cursor (see consumer.js).
'use strict';

const { parseArgs } = require('node:util');
const kf = require('./klingfan');

// handle does the work for one event; here it prints it.
function handle(event) {
  console.log(kf.summary(event));
}

// follow runs one stream. It resolves with 'done' after maxEvents, null
// when the server ended the stream, or the stream's error.
function follow(events, request, metadata, state, cursor, maxEvents) {
  return new Promise((resolve) => {
    let done = false;
    const call = events.Subscribe(request, metadata);
    call.on('metadata', (md) => {
      const head = md.get(kf.HEAD_SEQUENCE_HEADER)[0];
      if (head === undefined) {
        return;
      }
      state.attempt = 0; // live: the next break starts the backoff over
      if (state.last === null) {
        // Record where the stream went live, so a subscriber stopped
        // before its first event resumes without a gap.
        state.last = String(head);
        cursor.save(state.last);
      }
    });
    call.on('data', (response) => {
      if (done) {
        return;
      }
      handle(response.event);
      state.last = response.event.sequence;
      cursor.save(state.last);
      state.handled++;
      if (maxEvents > 0 && state.handled >= maxEvents) {
        done = true;
        call.cancel();
        resolve('done');
      }
    });
    call.on('error', (err) => resolve(err));
    call.on('end', () => resolve(null));
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      ...kf.connectionOptions,
      'cursor-file': { type: 'string' },
      'from-beginning': { type: 'boolean', default: false },
      job: { type: 'string', multiple: true, default: [] },
      'max-events': { type: 'string', default: '0' },
    },
  });
  if (!values['cursor-file']) {
    throw new Error('--cursor-file is required');
  }
  const v1 = kf.loadServices();
  const { creds, metadata } = kf.connect(values);
  const events = new v1.EventService(values.server, creds);
  const cursor = new kf.FileCursor(values['cursor-file']);
  const state = { last: cursor.load(), handled: 0, attempt: 0 };
  const maxEvents = Number(values['max-events']);
  for (;;) {
    const request = { job_ids: values.job };
    if (state.last !== null) {
      request.after_sequence = state.last;
    } else if (values['from-beginning']) {
      request.from_beginning = true;
    }
    const result = await follow(events, request, metadata, state, cursor, maxEvents);
    if (result === 'done') {
      events.close();
      return;
    }
    state.attempt++;
    if (result) {
      console.error(`stream ended: ${result.code} ${result.details}; reconnecting`);
    }
    await kf.waitBeforeRetry(result, state.attempt);
  }
}

main().catch((err) => {
  console.error(`subscriber: ${err.message}`);
  process.exit(1);
});
