// Shared helpers for the headless-Chromium page tests (Debian's chromium,
// driven by playwright-core; no browser is ever downloaded).
import { chromium } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'

export async function launch () {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  })
}

// Slow the page's uploads down so a test can pause/reload in the middle.
export async function throttle (page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Network.enable')
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: bytesPerSecond,
  })
}

// Poll fn() until it returns a truthy value, at most `ms` milliseconds.
export async function until (fn, ms, what) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error('timed out waiting for ' + what)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

export function args (argv) {
  const out = {}
  for (let i = 2; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1]
  return out
}

// Run main(), print one JSON line, exit 0/1; bounded by a global timeout.
export function run (main, timeoutMs = 120000) {
  const timer = setTimeout(() => { console.log(JSON.stringify({ ok: false, error: 'timeout' })); process.exit(1) }, timeoutMs)
  main().then(r => { clearTimeout(timer); console.log(JSON.stringify({ ok: true, ...r })); process.exit(0) },
    e => { clearTimeout(timer); console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) })); process.exit(1) })
}

// Slow the page's downloads down (fetch bodies) so a test can abort one.
export async function throttleDown (page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Network.enable')
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 5, downloadThroughput: bytesPerSecond, uploadThroughput: -1,
  })
}

// A slow link: a TCP proxy on 127.0.0.1 in front of the server at `target`
// (http://127.0.0.1:PORT) that forwards what the browser sends at most
// `bytesPerSecond` (responses at full speed). Unlike throttle(), which
// Chromium applies before a request body goes out, the server receives one
// big body slowly, so aborting it in the middle leaves a partial upload.
// Returns {url, close()}.
export async function slowLink (target, bytesPerSecond) {
  const net = await import('node:net')
  const port = parseInt(new URL(target).port, 10)
  const socks = new Set()
  const server = net.createServer(client => {
    const up = net.connect(port, '127.0.0.1')
    socks.add(client)
    socks.add(up)
    client.on('data', buf => {
      client.pause()
      up.write(buf)
      setTimeout(() => client.resume(), Math.ceil(1000 * buf.length / bytesPerSecond))
    })
    up.on('data', buf => client.write(buf))
    const end = () => { client.destroy(); up.destroy(); socks.delete(client); socks.delete(up) }
    client.on('close', end)
    up.on('close', end)
    client.on('error', end)
    up.on('error', end)
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    url: 'http://127.0.0.1:' + server.address().port,
    close: () => { for (const s of socks) s.destroy(); server.close() },
  }
}

// launch() with extra Chromium flags, e.g. a --host-resolver-rules mapping
// that sends a seed client's fixed http://localhost:8000 to the test server.
export async function launchWith (extra) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
      ...extra],
  })
}
