#!/usr/bin/env node
// tus_upload.mjs: one upload with tus-js-client for bench/run.py.
//
//   node bench/tus_upload.mjs --endpoint URL --file PATH
//        [--chunk-size BYTES] [--parallel N] [--timeout SECONDS]
//
// Prints one JSON line: {"ok":bool,"url":...,"secs":transfer seconds,
// "error":...}. secs runs from upload.start() to onSuccess, so the Node
// start-up is not counted. Exit 0 when ok. Bounded by --timeout (600 s).

import * as fs from 'node:fs'
import { parseArgs } from 'node:util'
import * as tus from 'tus-js-client'

const { values: a } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    file: { type: 'string' },
    'chunk-size': { type: 'string' },
    parallel: { type: 'string' },
    timeout: { type: 'string', default: '600' },
  },
})

function done(ok, extra) {
  process.stdout.write(`${JSON.stringify({ ok, ...extra })}\n`, () => process.exit(ok ? 0 : 1))
}

// No uploadSize: tus-js-client takes the size of an fs.ReadStream from its
// path (and refuses uploadSize together with parallelUploads).
const opts = {
  endpoint: a.endpoint,
  retryDelays: null,
  removeFingerprintOnSuccess: true,
  storeFingerprintForResuming: false,
  onError: (err) => done(false, { error: String(err && err.message ? err.message : err) }),
  onSuccess: () => done(true, { url: upload.url, secs: (performance.now() - t0) / 1000 }),
}
if (a['chunk-size']) opts.chunkSize = Number(a['chunk-size'])
if (a.parallel && Number(a.parallel) > 1) opts.parallelUploads = Number(a.parallel)

setTimeout(() => done(false, { error: 'timeout' }), Number(a.timeout) * 1000).unref()
const upload = new tus.Upload(fs.createReadStream(a.file), opts)
const t0 = performance.now()
upload.start()
