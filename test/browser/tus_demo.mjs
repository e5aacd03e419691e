// The tus demo page (htdocs/index.html) in headless Chromium: upload a file,
// pause in the middle, resume; then upload a second file, reload the page in
// the middle, pick the file again and let it resume from the server's
// offset. Prints {ok, urls: [url1, url2], resumed: [offset seen after pause,
// offset seen after reload]}.
import { launch, throttle, until, args, run } from './lib.mjs'

const a = args(process.argv)   // --page URL --file1 PATH --file2 PATH --shot PNG

async function pct (page) {
  return parseFloat((await page.textContent('#pct')) || '0')
}

async function startUpload (page, file) {
  await page.setInputFiles('#file', file)
  await page.selectOption('#chunk', '1048576')
  await page.click('#start')
}

async function finishedUrl (page, n) {
  await until(async () => (await page.$$('#finished li a')).length >= n, 90000, 'finished upload')
  return page.getAttribute('#finished li:first-child a', 'href')
}

async function statusText (page) {
  return (await page.textContent('#status')) || ''
}

run(async () => {
  const browser = await launch()
  try {
    const page = await browser.newPage()
    await throttle(page, 4 * 1024 * 1024)
    await page.goto(a.page)
    // 1: pause and resume
    await startUpload(page, a.file1)
    await until(async () => (await pct(page)) >= 30, 60000, '30 %')
    await page.click('#pause')
    await until(async () => /Paused/.test(await statusText(page)), 20000, 'paused')
    await page.click('#resume')
    await until(async () => /Resuming: the server already has/.test(await statusText(page)), 20000, 'resume via HEAD')
    const resumed1 = await statusText(page)
    const url1 = await finishedUrl(page, 1)
    // 2: reload in the middle, pick the same file again
    await startUpload(page, a.file2)
    await until(async () => (await pct(page)) >= 30, 60000, '30 % of the second file')
    await page.reload()
    await throttle(page, 4 * 1024 * 1024)
    await startUpload(page, a.file2)
    await until(async () => /Resuming: the server already has/.test(await statusText(page)), 20000, 'resume after reload')
    const resumed2 = await statusText(page)
    const url2 = await finishedUrl(page, 2)
    if (a.shot) await page.screenshot({ path: a.shot, fullPage: true })
    return { urls: [url1, url2], resumed: [resumed1, resumed2] }
  } finally {
    await browser.close()
  }
})
