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
