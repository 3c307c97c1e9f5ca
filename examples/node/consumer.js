#!/usr/bin/env node
// Consumes a klingfan consumer group, acknowledging each event it handles.
//
// The members of a group share its events: run this several times (on one
// machine or many) and each event goes to one of them. An event whose
// handler succeeds is acknowledged and done for the whole group; one that
// fails is rejected (nacked) and delivered again, to any member, after a
// delay; an event never acknowledged comes back after the group's ack_wait.
// The server keeps the group's position, so a restarted member needs no
// cursor file.
//
//   node consumer.js --server localhost:9090 --token "$KLINGFAN_TOKEN" --group thumbnailers
//
// An admin creates the group first, e.g. `klingctl groups create --id thumbnailers`.
'use strict';

const { parseArgs } = require('node:util');
const kf = require('./klingfan');

// handle does the work for one event; here it prints it. Throwing rejects
// the event, so it is retried.
async function handle(event, attempt) {
  console.log(kf.summary(event, { delivery_attempt: attempt }));
}

// ackEvents settles deliveries; a lost acknowledgement is not lost work:
// the event comes back after ack_wait and is handled again.
function ackEvents(groups, request, metadata) {
  return new Promise((resolve, reject) => {
    groups.AckEvents(request, metadata, { deadline: Date.now() + 10000 }, (err) => (err ? reject(err) : resolve()));
  });
}

// consume runs one Consume stream, handling one delivery at a time (the
// stream is paused meanwhile). It resolves with 'done' after maxEvents
// acknowledgements, null when the server ended the stream, or its error.
function consume(groups, group, maxInFlight, metadata, state, maxEvents) {
  return new Promise((resolve) => {
    let done = false;
    const call = groups.Consume({ consumer_group_id: group, max_in_flight: maxInFlight }, metadata);
    call.on('data', async (delivery) => {
      if (done) {
        return;
      }
      call.pause();
      state.attempt = 0;
      const request = { consumer_group_id: group, ack_ids: [], nack_ids: [] };
      try {
        await handle(delivery.event, delivery.delivery_attempt);
        request.ack_ids.push(delivery.ack_id);
      } catch (err) {
        console.error(`event ${delivery.event.sequence} failed: ${err.message}`);
        request.nack_ids.push(delivery.ack_id);
        request.nack_delay = { seconds: 5 };
      }
      try {
        await ackEvents(groups, request, metadata);
        state.acked += request.ack_ids.length;
      } catch (err) {
        console.error(`acknowledging event ${delivery.event.sequence}: ${err.message}`);
      }
      if (maxEvents > 0 && state.acked >= maxEvents) {
        done = true;
        call.cancel();
        resolve('done');
        return;
      }
      call.resume();
    });
    call.on('error', (err) => resolve(err));
    call.on('end', () => resolve(null));
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      ...kf.connectionOptions,
      group: { type: 'string' },
      'max-in-flight': { type: 'string', default: '16' },
      'max-events': { type: 'string', default: '0' },
    },
  });
  if (!values.group) {
    throw new Error('--group is required');
  }
  const v1 = kf.loadServices();
  const { creds, metadata } = kf.connect(values);
  const groups = new v1.ConsumerGroupService(values.server, creds);
  const state = { acked: 0, attempt: 0 };
  const maxEvents = Number(values['max-events']);
  for (;;) {
    const result = await consume(groups, values.group, Number(values['max-in-flight']), metadata, state, maxEvents);
    if (result === 'done') {
      groups.close();
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
  console.error(`consumer: ${err.message}`);
  process.exit(1);
});
