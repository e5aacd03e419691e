#!/usr/bin/env node
// tus_client.mjs: a small Node CLI around tus-js-client, used by the pytest
// suite (test/modules/resumable/test_900_tusjs.py) to check mod_resumable
// against the reference tus client.
//
//   node test/js/tus_client.mjs --endpoint URL --file PATH [--mode MODE]
//        [--chunk-size N] [--parallel N] [--url-storage FILE]
//        [--metadata k=v ...] [--protocol tus-v1|ietf-draft-03|ietf-draft-05]
//        [--timeout SECONDS] [--abort-at FRACTION] [--header 'Name: value' ...]
//        [--verbose] [--debug]
//
// Modes:
//   plain            one upload (fs.ReadStream input, ranged reads)
//   interrupt        start, upload.abort() once ~40% (--abort-at) has been
//                    reported by onProgress, then a NEW Upload with the same
//                    file + FileUrlStorage: findPreviousUploads() and
//                    resumeFromPreviousUpload() (HEAD for the server's
//                    offset). "bytes" is what the resumed run sent.
//   parallel         parallelUploads N (tus concatenation: N partial uploads
//                    and one final POST with Upload-Concat: final;...)
//   during-creation  uploadDataDuringCreation: the POST carries the first
//                    chunk (the whole file without --chunk-size)
//   deferred         uploadLengthDeferred with a stream input of unknown
//                    length (fs.createReadStream piped through a
//                    PassThrough, so tus-js-client cannot stat it); needs a
//                    chunk size (default 1 MiB); Upload-Length goes with the
//                    last PATCH
//   terminate        upload part of the file, abort, then
//                    tus.Upload.terminate(url); reports the DELETE status
//
// Output: exactly one JSON line on stdout:
//   {"ok":true|false,"mode":...,"uploadUrl":...,"bytes":N,"size":N,
//    "error":null|"...", ...mode-specific fields}
// Exit status: 0 when ok, 1 otherwise (including the overall --timeout,
// default 120 s). Diagnostics (with --verbose) go to stderr.

import * as fs from 'node:fs'
import * as path from 'node:path'
import { PassThrough } from 'node:stream'
import { parseArgs } from 'node:util'
import * as tus from 'tus-js-client'

const MODES = ['plain', 'interrupt', 'parallel', 'during-creation', 'deferred', 'terminate']
const PROTOCOLS = ['tus-v1', 'ietf-draft-03', 'ietf-draft-05']

let finished = false
// The last request/response seen, reported with a timeout or an error.
const trace = { requests: 0, last: null }
const result = {
  ok: false,
  mode: null,
  protocol: null,
  uploadUrl: null,
  bytes: 0,
  size: null,
  error: null,
}

const cleanups = []

function finish(ok, extra = {}) {
  if (finished) return
  finished = true
  Object.assign(result, extra, { ok })
  if (ok) result.error = null
  else if (trace.last) result.lastExchange = trace.last
  for (const fn of cleanups) {
    try {
      fn()
    } catch {}
  }
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(ok ? 0 : 1))
}

function fail(err, extra = {}) {
  let msg = err instanceof Error ? err.message : String(err)
  // DetailedError carries the request/response: add the status if any
  if (err && err.originalResponse && typeof err.originalResponse.getStatus === 'function') {
    extra.status = err.originalResponse.getStatus()
  }
  if (!msg) msg = 'unknown error'
  finish(false, { ...extra, error: msg })
}

let verbose = false
function log(...args) {
  if (verbose) console.error('[tus_client]', ...args)
}

function usage(msg) {
  if (msg) console.error(`tus_client: ${msg}`)
  console.error(
    'usage: node test/js/tus_client.mjs --endpoint URL --file PATH [--mode ' +
      `${MODES.join('|')}] [--chunk-size N] [--parallel N] [--url-storage FILE] ` +
      `[--metadata k=v ...] [--protocol ${PROTOCOLS.join('|')}] [--timeout S] ` +
      '[--abort-at F] [--header "N: v" ...] [--verbose] [--debug]',
  )
}

let args
try {
  ;({ values: args } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      file: { type: 'string' },
      mode: { type: 'string', default: 'plain' },
      'chunk-size': { type: 'string' },
      parallel: { type: 'string' },
      'url-storage': { type: 'string' },
      metadata: { type: 'string', multiple: true, default: [] },
      protocol: { type: 'string', default: 'tus-v1' },
      timeout: { type: 'string', default: '120' },
      'abort-at': { type: 'string', default: '0.4' },
      header: { type: 'string', multiple: true, default: [] },
      verbose: { type: 'boolean', short: 'v', default: false },
      debug: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }))
} catch (e) {
  usage(e.message)
  result.error = `bad arguments: ${e.message}`
  finish(false)
}

// Should the event loop ever drain without a result, say so instead of
// exiting 0 silently.
process.on('beforeExit', () => {
  if (!finished) fail(new Error('internal: event loop drained without a result'))
})
process.on('uncaughtException', (err) => fail(err, { uncaught: true }))
process.on('unhandledRejection', (err) => fail(err, { uncaught: true }))

if (args) main()

function intArg(name, min) {
  const v = args[name]
  if (v == null) return null
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`)
  return n
}

function main() {
  if (args.help) {
    usage()
    process.exit(0)
  }
  verbose = args.verbose || args.debug
  if (args.debug) {
    // tus-js-client's debug log uses console.log: keep stdout for the result
    console.log = (...a) => console.error(...a)
    tus.enableDebugLog()
  }
  result.mode = args.mode
  result.protocol = args.protocol

  let chunkSize
  let parallel
  let timeoutS
  let abortAt
  const metadata = {}
  const headers = {}
  try {
    if (!args.endpoint) throw new Error('--endpoint is required')
    if (!args.file) throw new Error('--file is required')
    if (!MODES.includes(args.mode)) throw new Error(`unknown --mode ${args.mode}`)
    if (!PROTOCOLS.includes(args.protocol)) throw new Error(`unknown --protocol ${args.protocol}`)
    chunkSize = intArg('chunk-size', 1)
    parallel = intArg('parallel', 1)
    timeoutS = Number(args.timeout)
    if (!(timeoutS > 0)) throw new Error('--timeout must be > 0')
    abortAt = Number(args['abort-at'])
    if (!(abortAt > 0 && abortAt < 1)) throw new Error('--abort-at must be in (0, 1)')
    for (const kv of args.metadata) {
      const i = kv.indexOf('=')
      if (i <= 0) throw new Error(`--metadata expects k=v, got ${kv}`)
      metadata[kv.slice(0, i)] = kv.slice(i + 1)
    }
    for (const hv of args.header) {
      const i = hv.indexOf(':')
      if (i <= 0) throw new Error(`--header expects Name: value, got ${hv}`)
      headers[hv.slice(0, i).trim()] = hv.slice(i + 1).trim()
    }
    const st = fs.statSync(args.file)
    if (!st.isFile()) throw new Error(`${args.file} is not a regular file`)
    result.size = st.size
  } catch (e) {
    usage(e.message)
    fail(e)
    return
  }
  if (!('filename' in metadata)) metadata.filename = path.basename(args.file)
  if (!('filetype' in metadata)) metadata.filetype = 'application/octet-stream'

  // Overall bound: never hang a test run.
  // (Not unref()ed: it also keeps the process alive while a request waits.)
  setTimeout(() => {
    fail(new Error(`timeout after ${timeoutS} s`), { timeout: true })
  }, timeoutS * 1000)

  const ctx = {
    endpoint: args.endpoint,
    file: args.file,
    size: result.size,
    chunkSize,
    parallel,
    abortAt,
    metadata,
    headers,
    protocol: args.protocol,
    urlStorage: args['url-storage'],
  }
  const modes = {
    plain: runPlain,
    interrupt: runInterrupt,
    parallel: runParallel,
    'during-creation': runDuringCreation,
    deferred: runDeferred,
    terminate: runTerminate,
  }
  modes[args.mode](ctx).then(
    (extra) => finish(true, extra),
    (err) => fail(err),
  )
}

// Common Upload options; `extra` may add mode-specific hooks, which are
// chained after the tracing ones.
function baseOptions(ctx, extra = {}) {
  const { onAfterResponse, ...rest } = extra
  const opts = {
    endpoint: ctx.endpoint,
    metadata: ctx.metadata,
    headers: ctx.headers,
    protocol: ctx.protocol,
    // 409/423 and 5xx are retried (tus-js-client's default rule); after an
    // abort the server may still hold the upload's lock for a moment. 501
    // (an extension the server lacks) is not worth retrying.
    retryDelays: [0, 300, 1000, 2000, 3000, 5000],
    onShouldRetry(err) {
      const status = err.originalResponse ? err.originalResponse.getStatus() : 0
      if (status === 501) return false
      return status < 400 || status >= 500 || status === 409 || status === 423
    },
    removeFingerprintOnSuccess: false,
    onAfterResponse(req, res) {
      trace.requests += 1
      trace.last = `${req.getMethod()} ${req.getURL()} -> ${res.getStatus()}`
      log(trace.last)
      if (onAfterResponse) return onAfterResponse(req, res)
      return undefined
    },
    ...rest,
  }
  if (ctx.chunkSize != null && opts.chunkSize == null) opts.chunkSize = ctx.chunkSize
  return opts
}

// Runs one Upload to completion. Returns {url, bytes} where bytes is the sum
// of chunk sizes the server accepted during this run (onChunkComplete).
function runUpload(input, opts, { onStart } = {}) {
  return new Promise((resolve, reject) => {
    let bytes = 0
    const upload = new tus.Upload(input, {
      ...opts,
      onChunkComplete(chunk, accepted, total) {
        bytes += chunk
        log(`chunk ${chunk} accepted ${accepted}/${total}`)
        if (opts.onChunkComplete) opts.onChunkComplete(chunk, accepted, total)
      },
      onError(err) {
        reject(err)
      },
      onSuccess() {
        resolve({ url: upload.url, bytes, upload })
      },
    })
    if (onStart) onStart(upload)
    else upload.start()
  })
}

async function runPlain(ctx) {
  const { url, bytes } = await runUpload(fs.createReadStream(ctx.file), baseOptions(ctx))
  return { uploadUrl: url, bytes }
}

async function runDuringCreation(ctx) {
  let postBytes = null
  const opts = baseOptions(ctx, {
    uploadDataDuringCreation: true,
    onAfterResponse(req, res) {
      if (req.getMethod() === 'POST') {
        const off = res.getHeader('Upload-Offset')
        postBytes = off == null ? null : Number(off)
        log(`POST -> ${res.getStatus()} Upload-Offset ${off}`)
      }
    },
  })
  const { url, bytes } = await runUpload(fs.createReadStream(ctx.file), opts)
  return { uploadUrl: url, bytes, creationOffset: postBytes }
}

async function runParallel(ctx) {
  const n = ctx.parallel ?? 4
  const partials = new Set()
  let finalConcat = null
  const opts = baseOptions(ctx, {
    parallelUploads: n,
    metadataForPartialUploads: { part: 'yes' },
    onAfterResponse(req, res) {
      if (req.getMethod() !== 'POST') return
      const concat = req.getHeader('Upload-Concat')
      if (concat === 'partial') partials.add(res.getHeader('Location'))
      else if (concat && concat.startsWith('final')) finalConcat = concat
    },
  })
  const { url, bytes } = await runUpload(fs.createReadStream(ctx.file), opts)
  return { uploadUrl: url, bytes, parts: partials.size, finalConcat }
}

async function runDeferred(ctx) {
  // An fs.ReadStream with a path would be stat()ed by tus-js-client (known
  // size); piping it through a PassThrough makes it a plain Readable of
  // unknown length, which is what uploadLengthDeferred is for.
  const chunkSize = ctx.chunkSize ?? 1024 * 1024
  if (ctx.size % chunkSize === 0) {
    // tus-js-client 4.3.1 stalls forever when a deferred-length stream ends
    // exactly on a chunk boundary (upstream issue tus/tus-js-client#779).
    throw new Error(
      `deferred: file size ${ctx.size} is a multiple of the chunk size ${chunkSize}; ` +
        'tus-js-client 4.3.1 would stall (tus-js-client#779): pick another size',
    )
  }
  const stream = fs.createReadStream(ctx.file).pipe(new PassThrough())
  let lengthSentWith = null
  const opts = baseOptions(ctx, {
    uploadLengthDeferred: true,
    chunkSize,
    onBeforeRequest(req) {
      const len = req.getHeader('Upload-Length')
      if (req.getMethod() === 'PATCH' && len != null) lengthSentWith = Number(len)
    },
  })
  const { url, bytes } = await runUpload(stream, opts)
  return { uploadUrl: url, bytes, deferredLength: lengthSentWith }
}

function storagePath(ctx) {
  if (ctx.urlStorage) return ctx.urlStorage
  // a private one next to the file, removed at exit
  const p = path.join(
    path.dirname(path.resolve(ctx.file)),
    `.tus-url-storage-${process.pid}-${Date.now()}.json`,
  )
  cleanups.push(() => fs.rmSync(p, { force: true }))
  return p
}

// Starts an upload and aborts it once `fraction` of the file is reported by
// onProgress (and, when chunking, at least one chunk has been accepted so the
// server has something to resume from). Resolves with the upload URL.
function uploadPartially(ctx, opts, fraction) {
  return new Promise((resolve, reject) => {
    let aborted = false
    let accepted = 0
    let upload = null
    const doAbort = (why) => {
      if (aborted) return
      aborted = true
      log(`aborting (${why}) at accepted=${accepted}`)
      upload
        .abort()
        .then(() => resolve({ url: upload.url, accepted }))
        .catch(reject)
    }
    const wantBytes = Math.floor(ctx.size * fraction)
    upload = new tus.Upload(fs.createReadStream(ctx.file), {
      ...opts,
      onProgress(sent, total) {
        if (aborted) return
        const needChunk = opts.chunkSize != null && Number.isFinite(opts.chunkSize)
        if (sent >= wantBytes && upload.url && (!needChunk || accepted > 0)) {
          doAbort(`progress ${sent}/${total}`)
        }
      },
      onChunkComplete(chunk, acc) {
        accepted = acc
        if (!aborted && acc >= wantBytes) doAbort(`chunk complete ${acc}`)
      },
      onError(err) {
        if (!aborted) reject(err)
      },
      onSuccess() {
        if (!aborted) reject(new Error('upload finished before it could be interrupted (file too small?)'))
      },
    })
    upload.start()
  })
}

async function runInterrupt(ctx) {
  const storage = new tus.FileUrlStorage(storagePath(ctx))
  const first = await uploadPartially(
    ctx,
    baseOptions(ctx, { urlStorage: storage, storeFingerprintForResuming: true }),
    ctx.abortAt,
  )
  log(`first run aborted, url ${first.url}, accepted ${first.accepted}`)
  if (first.accepted >= ctx.size) {
    throw new Error(
      'interrupt: the whole file was accepted before the abort; use a smaller --chunk-size or a larger file',
    )
  }

  // The offset the resumed run continued from: the last HEAD answer (after an
  // abort mid-PATCH the server may still be storing that request's bytes, so
  // a PATCH can meet 409 and tus-js-client asks again).
  let resumeOffset = null
  const headOffsets = []
  let headSeen = false
  let postSeen = false
  const opts = baseOptions(ctx, {
    urlStorage: storage,
    storeFingerprintForResuming: true,
    onAfterResponse(req, res) {
      const m = req.getMethod()
      if (m === 'HEAD') {
        headSeen = true
        const off = res.getHeader('Upload-Offset')
        if (off != null) {
          resumeOffset = Number(off)
          headOffsets.push(resumeOffset)
        }
        log(`HEAD -> ${res.getStatus()} Upload-Offset ${off}`)
      } else if (m === 'POST') {
        postSeen = true
      }
    },
  })
  let previousCount = 0
  const second = await runUpload(fs.createReadStream(ctx.file), opts, {
    onStart(upload) {
      upload
        .findPreviousUploads()
        .then((previous) => {
          previousCount = previous.length
          log(`previous uploads: ${previous.length}`)
          if (previous.length === 0) throw new Error('no previous upload found in the URL storage')
          // newest first
          previous.sort((a, b) => (Date.parse(b.creationTime) || 0) - (Date.parse(a.creationTime) || 0))
          upload.resumeFromPreviousUpload(previous[0])
          upload.start()
        })
        .catch((err) => {
          upload.options.onError(err)
        })
    },
  })
  const resumed = headSeen && !postSeen && second.url === first.url
  return {
    uploadUrl: second.url,
    bytes: second.bytes,
    firstUrl: first.url,
    firstAccepted: first.accepted,
    resumeOffset,
    headOffsets,
    previousUploads: previousCount,
    resumed,
  }
}

async function runTerminate(ctx) {
  const first = await uploadPartially(ctx, baseOptions(ctx), ctx.abortAt)
  if (!first.url) throw new Error('no upload URL after the partial upload')
  let status = null
  await tus.Upload.terminate(
    first.url,
    baseOptions(ctx, {
      onAfterResponse(req, res) {
        if (req.getMethod() === 'DELETE') status = res.getStatus()
      },
    }),
  ).catch((err) => {
    const e = err instanceof Error ? err : new Error(String(err))
    e.terminateStatus = status
    throw e
  })
  return { uploadUrl: first.url, bytes: first.accepted, status, terminated: status === 204 }
}
