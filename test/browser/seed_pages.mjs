// The seed demo pages (htdocs/seeds/) in headless Chromium, each with its
// seed client unchanged: start an upload of --file, interrupt it (the
// client's own pause/stop, and a page reload), resume as the client allows,
// wait for completion. --which picks the page:
//   offset     001-offset.html: stop, submit again, reload, submit again
//   flow       flow.html (Flow.js): pause, resume, reload, pick again
//   resumable  resumable.html (Resumable.js): the same
//   slice      000-slice.html: reload mid-upload, choose + upload again
//   slice003   003-slice.html: pause, resume, reload, choose + upload again
//   download   000-download.html: abort mid-download, download again
//   ranged     004-download.html: pause between pieces, continue
//   offset-refused  001-offset.html, one submit (of a file an application
//              hook may refuse, ResumableHook): what the page shows
//   once-slice, once-slice003, once-flow, once-resumable, once-md5  the
//              upload pages, one plain upload (of a file a pre-finish hook
//              may refuse): what the page shows, success or error
//   md5        002-md5.html at http://localhost:8000 (the seed client's
//              fixed origin, mapped to --base): pause, continue, reload,
//              choose again; then choose it once more (instant upload)
// Prints {ok, ...} with what the server was asked, for the pytest side to
// check against the stored file.
import { launch, launchWith, throttle, throttleDown, slowLink, until, args, run } from './lib.mjs'

const a = args(process.argv)   // --base URL --which W --file PATH --shot PNG
const RATE = 2 * 1024 * 1024

function watch (page, re) {
  const seen = []
  page.on('response', async resp => {
    const req = resp.request()
    if (!re.test(req.url())) return
    let body = ''
    // the protocol's answers (text, JSON), never a downloaded file's bytes
    const type = resp.headers()['content-type'] || ''
    if (/text|json/.test(type)) {
      try { body = await resp.text() } catch (e) { body = '' }
    }
    seen.push({ method: req.method(), url: req.url(), status: resp.status(),
      range: req.headers().range || null, contentRange: resp.headers()['content-range'] || null,
      body: body.slice(0, 4000) })
  })
  return seen
}

const text = async (page, sel) => (await page.textContent(sel)) || ''
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function open (page, path, down) {
  await page.goto(a.base + path)
  await (down ? throttleDown(page, RATE) : throttle(page, RATE))
}

// 001: the seed's Uploader: Stop aborts the POST; a new submit asks
// /status and resumes there. A refused resume (the aborted request still
// holds the upload) shows "error": the user submits again. Returns the
// log's last word, or "running" once the server holds `share` of the file.
async function offsetSubmit (page, share) {
  for (let i = 0; i < 10; i++) {
    // blank the log line so that a stale "error" is not read as the answer
    await page.evaluate(() => { document.getElementById('log').textContent = '' })
    await page.click('input[type=submit]')
    const r = await until(async () => {
      const t = await text(page, '#log')
      if (/^(error|success|stopped)$/.test(t)) return t
      return share && (await serverShare(page)) >= share && 'running'
    }, 90000, 'upload progress')
    if (r !== 'error') return r
    await sleep(1000)
  }
  throw new Error('upload refused 10 times')
}

// What the server has stored of the chosen file, as a share of its size:
// the seed's own status query (its file id), with a query string so that
// watch() leaves it out of the client's requests.
async function serverShare (page) {
  return page.evaluate(async () => {
    const f = document.forms.upload.elements.myfile.files[0]
    const r = await fetch('status?probe', { headers: { 'X-File-Id': f.name + '-' + f.size + '-' + f.lastModified } })
    return r.status === 200 ? (+await r.text()) / f.size : 0
  })
}

async function offset (page) {
  // one POST carries the whole rest of the file: slow it on the wire
  const link = await slowLink(a.base, RATE)
  try {
    return await offsetVia(page, link.url)
  } finally {
    link.close()
  }
}

async function offsetVia (page, base) {
  const seen = watch(page, /\/(status|upload)$/)
  await page.goto(base + '/seeds/001-offset.html')
  await page.setInputFiles('input[name=myfile]', a.file)
  if (await offsetSubmit(page, 0.25) !== 'running') throw new Error('finished before Stop')
  await page.click('button:has-text("Stop upload")')
  const stopped = await until(async () => {
    const t = await text(page, '#log')
    return /^(stopped|success|error)$/.test(t) && t
  }, 20000, 'stopped')
  if (stopped !== 'stopped') throw new Error('Stop upload: ' + stopped)
  await sleep(1000)
  if (await offsetSubmit(page, 0.55) !== 'running') throw new Error('finished before reload')
  await page.reload()
  await page.setInputFiles('input[name=myfile]', a.file)
  await sleep(1000)
  const end = await offsetSubmit(page, 0)
  if (end !== 'success') throw new Error('upload ended with ' + end)
  return { log: end, requests: seen }
}

const pct = async page => parseFloat(await text(page, '#pct')) || 0

// 001, one submit: what the page shows (a hook may refuse the file)
async function offsetRefused (page) {
  const seen = watch(page, /\/(status|upload)$/)
  await page.goto(a.base + '/seeds/001-offset.html')
  await page.setInputFiles('input[name=myfile]', a.file)
  await page.evaluate(() => { document.getElementById('log').textContent = '' })
  await page.click('input[type=submit]')
  const log = await until(async () => {
    const t = await text(page, '#log')
    return /^(error|success|stopped)$/.test(t) && t
  }, 60000, 'the answer')
  return { log, requests: seen }
}

async function flowlike (page, html, re = /\/flow(\?|$)/) {
  const seen = watch(page, re)
  await open(page, html)
  await page.setInputFiles('#file', a.file)
  await page.click('#start')
  await until(async () => (await pct(page)) >= 25, 60000, '25 %')
  await page.click('#pause')
  const paused = await pct(page)
  await sleep(1500)
  await page.click('#resume')
  await until(async () => (await pct(page)) >= 55, 60000, '55 %')
  const before = seen.length
  await page.reload()
  await throttle(page, RATE)
  await page.setInputFiles('#file', a.file)
  await page.click('#start')
  const link = await until(async () => page.getAttribute('#link', 'href').catch(() => null),
    90000, 'upload finished')
  return { link, paused, requests: seen, reloadAt: before,
    chunks: await page.evaluate(() => window.rsUploader
      ? window.rsUploader.files[0].chunks.length : slicer.total) }
}

async function slice (page) {
  const seen = watch(page, /\/slice(Upload|Merge)$/)
  await open(page, '/seeds/000-slice.html')
  const upload = async () => {
    await page.setInputFiles('#input', a.file)
    await page.click('button:has-text("上传")')
  }
  await upload()
  await until(async () => page.evaluate(() => {
    const p = document.querySelector('#progress')
    return p.max > 1 && p.value / p.max >= 0.3
  }), 60000, '30 %')
  const before = seen.length
  await page.reload()
  await throttle(page, RATE)
  await upload()
  const link = await until(async () => page.getAttribute('#link', 'href').catch(() => null),
    90000, 'merged')
  return { link, requests: seen, reloadAt: before }
}

async function download (page) {
  const seen = watch(page, /\/test\.mp4$/)
  await open(page, '/seeds/000-download.html', true)
  await page.click('button:has-text("下载")')
  await until(async () => page.evaluate(() => {
    const p = document.querySelector('#progress')
    return p.max > 1 && p.value / p.max >= 0.3
  }), 60000, '30 %')
  await page.click('button:has-text("终止请求")')
  await sleep(500)
  const paused = await page.evaluate(() => sum)   // the seed's byte count
  await page.click('button:has-text("下载")')
  await until(async () => page.evaluate(() => /^blob:/.test(document.querySelector('#video').src)),
    90000, 'download finished')
  // the bytes the seed client assembled (its blob, shown in the <video>)
  const got = await page.evaluate(async () => {
    const buf = await (await fetch(document.querySelector('#video').src)).arrayBuffer()
    const h = await crypto.subtle.digest('SHA-256', buf)
    return { length: buf.byteLength,
      sha256: [...new Uint8Array(h)].map(b => b.toString(16).padStart(2, '0')).join('') }
  })
  return { paused, total: await page.evaluate(() => sum), blob: got, requests: seen }
}

const SEED_ORIGIN = 'http://localhost:8000'

async function md5Percent (page) {
  return parseFloat(await text(page, '.progress .inner span')) || 0
}

async function md5Choose (page) {
  await page.setInputFiles('#file', a.file)
  // the handshake answered: the control button is shown (or the link)
  return until(async () => page.evaluate(() => {
    const s = document.querySelector('.btn.control').dataset.status
    return s !== 'unchoose' && s
  }), 60000, 'handshake')
}

async function md5 (page) {
  const seen = watch(page, /\/api\/upload(\/handshake)?$/)
  await open(page, '/seeds/002-md5.html')
  if (await md5Choose(page) !== 'choose') throw new Error('not a new upload')
  await page.click('.btn.control')              // 开始上传
  await until(async () => (await md5Percent(page)) >= 25, 60000, '25 %')
  await page.click('.btn.control')              // 暂停
  const paused = await md5Percent(page)
  await sleep(1500)
  await page.click('.btn.control')              // 继续
  await until(async () => (await md5Percent(page)) >= 50, 60000, '50 %')
  const reloadAt = seen.length
  await page.reload()
  await throttle(page, RATE)
  if (await md5Choose(page) !== 'choose') throw new Error('not resumable after reload')
  await page.click('.btn.control')
  const link = await until(async () => page.textContent('#link a').catch(() => null),
    90000, 'upload finished')
  // instant upload: the same file once more
  const instantAt = seen.length
  await page.reload()
  const again = await md5Choose(page)
  const instant = await page.textContent('#link a')
  return { link, paused, again, instant, requests: seen, reloadAt, instantAt }
}

// 004: HEAD, Range pieces; Pause between pieces, Continue, and the
// sha256 of what the page assembled
async function ranged (page) {
  const seen = watch(page, /\/upload\/ranged\.bin$/)
  await open(page, '/seeds/004-download.html', true)
  await page.fill('#name', 'ranged.bin')
  await page.click('#start')
  await until(async () => (await pct(page)) >= 30, 60000, '30 %')
  await page.click('#pause')
  await until(async () => /paused/.test(await text(page, '#status')), 20000, 'paused')
  await sleep(1500)
  const paused = await pct(page)
  const idle = seen.length
  await sleep(1500)
  if (seen.length !== idle) throw new Error('requests while paused')
  await page.click('#go')
  const sha = await until(async () => text(page, '#sha'), 90000, 'download finished')
  return { sha, paused, requests: seen, info: await text(page, '#info') }
}

// One plain upload on an upload page: "success" (the page links the file)
// or "error" (the page says so), and the page's status text.
const ONCE = {
  slice: { html: '/seeds/000-slice.html', input: '#input',
    go: page => page.click('button:has-text("上传")') },
  slice003: { html: '/seeds/003-slice.html', input: '#file', go: page => page.click('#start') },
  flow: { html: '/seeds/flow.html', input: '#file', go: page => page.click('#start') },
  resumable: { html: '/seeds/resumable.html', input: '#file', go: page => page.click('#start') },
  md5: { html: '/seeds/002-md5.html', input: '#file',
    go: async page => { await md5Choose(page); await page.click('.btn.control') } },
}

async function once (page, which) {
  const p = ONCE[which]
  const seen = watch(page, /\/(sliceUpload|sliceMerge|flow|api\/upload(\/handshake)?)(\?|$)/)
  await page.goto(a.base + p.html)
  if (which === 'md5') {
    await p.go(page)
  } else {
    await page.setInputFiles(p.input, a.file)
    await page.waitForFunction(() => !document.querySelector('#start') ||
      !document.querySelector('#start').disabled)
    await p.go(page)
  }
  const shown = await until(async () => page.evaluate(() => {
    const link = document.querySelector('#link a') || document.querySelector('a#link')
    if (link && link.textContent) return 'success'
    if (document.querySelector('.status.error')) return 'error'
    return null
  }), 90000, 'success or error')
  const status = await page.textContent('#status').catch(() => '')
  return { shown, status, requests: seen }
}

const PAGES = {
  'once-slice': page => once(page, 'slice'),
  'once-slice003': page => once(page, 'slice003'),
  'once-flow': page => once(page, 'flow'),
  'once-resumable': page => once(page, 'resumable'),
  'once-md5': page => once(page, 'md5'),
  offset,
  'offset-refused': offsetRefused,
  flow: page => flowlike(page, '/seeds/flow.html'),
  resumable: page => flowlike(page, '/seeds/resumable.html'),
  slice,
  slice003: page => flowlike(page, '/seeds/003-slice.html', /\/sliceUpload$/),
  download,
  ranged,
  md5,
}

run(async () => {
  const md5 = /md5$/.test(a.which)
  const browser = md5
    ? await launchWith([`--host-resolver-rules=MAP localhost:8000 127.0.0.1:${new URL(a.base).port}`])
    : await launch()
  if (md5) a.base = SEED_ORIGIN
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } })
    const out = await PAGES[a.which](page)
    await sleep(500)   // let the progress bars' transitions end
    if (a.shot) await page.screenshot({ path: a.shot, fullPage: true })
    return out
  } finally {
    await browser.close()
  }
}, 240000)
