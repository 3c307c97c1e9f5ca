// Connection, cursor and reconnect helpers shared by the examples. The
// service definitions are loaded at run time from the repository's proto/
// directory (or $KLINGFAN_PROTO_DIR), so there is no generated code.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The Subscribe response header that marks a stream live; its value is the
// sequence the stream starts after.
const HEAD_SEQUENCE_HEADER = 'klingfan-head-sequence';

// Failures worth reconnecting after: the server went away, restarted or
// asked the client to come back later. Anything else (a bad token, a resume
// point older than retention, an unknown group) is the caller's to fix.
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.ABORTED, grpc.status.RESOURCE_EXHAUSTED]);

// loadServices returns the kling.gateway.v1 package. Sequences (uint64)
// are decimal strings, enums their names, field names as in the .proto.
function loadServices() {
  const protoDir = process.env.KLINGFAN_PROTO_DIR || path.resolve(__dirname, '..', '..', 'proto');
  const definition = protoLoader.loadSync(
    ['kling/gateway/v1/event_service.proto', 'kling/gateway/v1/consumer_group_service.proto', 'kling/gateway/v1/job_service.proto'],
    { includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
  );
  return grpc.loadPackageDefinition(definition).kling.gateway.v1;
}

// connectionOptions are the flags every example takes, for util.parseArgs.
const connectionOptions = {
  server: { type: 'string', default: process.env.KLINGFAN_SERVER || 'localhost:9090' },
  token: { type: 'string', default: process.env.KLINGFAN_TOKEN || '' },
  tls: { type: 'boolean', default: false },
};

// connect returns the credentials for a service client and the call
// metadata that carries the token.
function connect(values) {
  const creds = values.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
  const metadata = new grpc.Metadata();
  if (values.token) {
    metadata.set('authorization', `Bearer ${values.token}`);
  }
  return { creds, metadata };
}

// backoff is the wait in milliseconds before reconnect attempt n:
// exponential with full jitter, so many clients that lost the same server
// do not return in step.
function backoff(attempt, low = 100, high = 10000) {
  const delay = Math.min(high, low * 2 ** Math.max(attempt - 1, 0));
  return delay / 2 + Math.random() * (delay / 2);
}

// waitBeforeRetry waits before reconnecting after err (null: the server
// ended the stream cleanly), or throws err when it is not worth a retry.
async function waitBeforeRetry(err, attempt) {
  if (err && !RETRYABLE.has(err.code)) {
    throw err;
  }
  await new Promise((resolve) => setTimeout(resolve, backoff(attempt)));
}

// FileCursor keeps the sequence of the last event handled in one file, in
// decimal. save writes a temporary file in the same directory, syncs it
// and renames it over the old one, so a crash leaves the old cursor or the
// new one, never a torn file.
class FileCursor {
  constructor(file) {
    this.file = file;
  }

  // load returns the saved sequence as a string, or null on a first run.
  load() {
    let text;
    try {
      text = fs.readFileSync(this.file, 'ascii').trim();
    } catch (err) {
      if (err.code === 'ENOENT') {
        return null;
      }
      throw err;
    }
    if (text === '') {
      return null;
    }
    if (!/^\d+$/.test(text)) {
      throw new Error(`cursor file ${this.file}: ${JSON.stringify(text)} is not a sequence number`);
    }
    return text;
  }

  // save records sequence (a decimal string) as handled.
  save(sequence) {
    const tmp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${process.pid}`);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, `${sequence}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
  }
}

// summary is the JSON line an example prints for an event.
function summary(event, extra = {}) {
  return JSON.stringify({ sequence: event.sequence, id: event.id, type: event.type, job_id: event.job ? event.job.job_id : '', ...extra });
}

// toStruct turns a plain JSON object into a google.protobuf.Struct message
// as the proto loader takes it (CreateJobRequest.body).
function toStruct(obj) {
  const fields = {};
  for (const [key, value] of Object.entries(obj)) {
    fields[key] = toValue(value);
  }
  return { fields };
}

function toValue(v) {
  if (v === null) {
    return { null_value: 'NULL_VALUE' };
  }
  if (Array.isArray(v)) {
    return { list_value: { values: v.map(toValue) } };
  }
  switch (typeof v) {
    case 'number':
      return { number_value: v };
    case 'string':
      return { string_value: v };
    case 'boolean':
      return { bool_value: v };
    case 'object':
      return { struct_value: toStruct(v) };
  }
  throw new Error(`cannot send ${typeof v} in a JSON body`);
}

module.exports = { HEAD_SEQUENCE_HEADER, loadServices, connectionOptions, connect, waitBeforeRetry, FileCursor, summary, toStruct };
