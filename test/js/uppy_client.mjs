#!/usr/bin/env node
// uppy_client.mjs: Uppy (@uppy/core with the @uppy/tus plugin, as a web
// page would use them, here in Node) uploading one file, for the pytest
// suite (test/modules/resumable/test_995_hook_uppy.py): what Uppy itself
// reports for the upload, success or failure.
//
//   node test/js/uppy_client.mjs --endpoint URL --file PATH [--name NAME]
//        [--chunk-size N] [--timeout SECONDS]
//
// Output: exactly one JSON line on stdout:
//   {"ok":true|false,"successful":N,"failed":N,"error":null|"...",
//    "uploadUrl":null|"...","events":["upload-success"|"upload-error",...]}
// ok is what Uppy's upload() result says (no failed file, one successful).
// Exit status: 0 when ok, 1 otherwise (also after --timeout, default 60 s).
import * as fs from 'node:fs'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import Uppy from '@uppy/core'
import Tus from '@uppy/tus'

const { values: a } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    file: { type: 'string' },
    name: { type: 'string' },
    'chunk-size': { type: 'string' },
    timeout: { type: 'string', default: '60' },
  },
})
const out = { ok: false, successful: 0, failed: 0, error: null, uploadUrl: null, events: [] }

function finish (code) {
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(code)
}

setTimeout(() => { out.error = 'timeout'; finish(1) }, Number(a.timeout) * 1000).unref()

try {
  const uppy = new Uppy({ autoProceed: false })
  const opts = { endpoint: a.endpoint, retryDelays: [0, 500] }
  if (a['chunk-size']) opts.chunkSize = Number(a['chunk-size'])
  uppy.use(Tus, opts)
  uppy.on('upload-success', (file, resp) => {
    out.events.push('upload-success')
    out.uploadUrl = resp && resp.uploadURL
  })
  uppy.on('upload-error', (file, err) => {
    out.events.push('upload-error')
    out.error = String(err && err.message ? err.message : err)
  })
  // Node: tus-js-client reads a Buffer (a browser would give a File)
  uppy.addFile({ name: a.name || path.basename(a.file), type: 'application/octet-stream',
    data: fs.readFileSync(a.file) })
  const res = await uppy.upload()
  out.successful = res ? res.successful.length : 0
  out.failed = res ? res.failed.length : 0
  out.ok = !!res && out.failed === 0 && out.successful === 1
  finish(out.ok ? 0 : 1)
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e)
  finish(1)
}
