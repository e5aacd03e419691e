// The ranged download of design document 004
// (../shared/seeds/004_4c6227786efc91ae.txt, "模拟客户端"), ported from
// Node's http.get to the browser's fetch: request the file piece by piece
// with "Range: bytes=<start>-<end>", append each piece, stop between pieces
// on Pause, go on from the next byte on Continue. Differences from the
// document, needed against any RFC 9110 server: the document's ranges
// overlap by one byte (its toy server treats the end as exclusive), here
// the end is inclusive (start + step - 1); the total comes from
// Content-Range "bytes a-b/total" (the document splits at the wrong '/'
// end) and from a HEAD first; no artificial 5 s delay between pieces.
(function () {
  'use strict'
  const $ = id => document.getElementById(id)
  const step = 1024 * 1024
  let start = 0
  let total = 0
  let pause = false
  let buffers = []
  let running = false

  function show () {
    const p = total ? 100 * start / total : 0
    $('bar').style.width = p.toFixed(1) + '%'
    $('pct').textContent = p.toFixed(1) + ' %'
    $('bytes').textContent = start + ' / ' + total + ' bytes'
  }

  async function head (url) {
    const res = await fetch(url, { method: 'HEAD' })
    if (res.status !== 200) throw new Error('HEAD ' + res.status)
    total = parseInt(res.headers.get('Content-Length'), 10)
    $('info').textContent = 'Accept-Ranges: ' + res.headers.get('Accept-Ranges') +
      ', Content-Disposition: ' + res.headers.get('Content-Disposition')
  }

  async function download (url) {
    running = true
    while (!pause && start < total) {
      const res = await fetch(url, { headers: { Range: `bytes=${start}-${start + step - 1}` } })
      if (res.status !== 206) throw new Error('GET ' + res.status)
      const range = res.headers.get('Content-Range')   // bytes a-b/total
      total = parseInt(range.split('/')[1], 10)
      const piece = await res.arrayBuffer()
      buffers.push(piece)
      start += piece.byteLength
      show()
    }
    running = false
    if (start >= total) await finish(url)
  }

  async function finish (url) {
    const blob = new Blob(buffers)
    const a = $('save')
    a.href = URL.createObjectURL(blob)
    a.download = decodeURIComponent(url.split('/').pop())
    a.textContent = 'save ' + a.download + ' (' + blob.size + ' bytes)'
    const h = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())
    $('sha').textContent = [...new Uint8Array(h)].map(b => b.toString(16).padStart(2, '0')).join('')
    $('bar').classList.add('done')
    status('done', 'ok')
    $('pause').disabled = $('go').disabled = true
  }

  function status (text, cls) {
    $('status').textContent = text
    $('status').className = 'status ' + (cls || '')
  }

  function url () { return '/upload/' + encodeURIComponent($('name').value) }

  function fail (e) { running = false; status(String(e), 'error') }

  $('start').onclick = () => {
    start = 0; total = 0; buffers = []; pause = false
    $('bar').classList.remove('done')
    $('sha').textContent = ''
    $('save').textContent = ''
    status('downloading')
    $('pause').disabled = false
    $('go').disabled = true
    head(url()).then(() => { show(); return download(url()) }).catch(fail)
  }
  $('pause').onclick = () => {
    pause = true
    status('paused (after the current piece)')
    $('pause').disabled = true
    $('go').disabled = false
  }
  $('go').onclick = () => {
    if (running) return
    pause = false
    status('downloading')
    $('pause').disabled = false
    $('go').disabled = true
    download(url()).catch(fail)
  }
})()
