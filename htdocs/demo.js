// mod_resumable demo page: tus-js-client (browser bundle, global `tus`,
// served from /vendor/tus.min.js) against the upload area /files/.
// Plain script, no build step.
;(function () {
  'use strict'

  var ENDPOINT = new URL('/files/', window.location.href).href
  var FINISHED_KEY = 'mod_resumable.demo.finished'

  var $ = function (id) { return document.getElementById(id) }
  var el = {
    file: $('file'), drop: $('drop'), chunk: $('chunk'), parallel: $('parallel'),
    start: $('start'), pause: $('pause'), resume: $('resume'), cancel: $('cancel'),
    bar: $('bar'), pct: $('pct'), bytes: $('bytes'), speed: $('speed'), eta: $('eta'),
    status: $('status'), finished: $('finished'), finishedEmpty: $('finished-empty'),
    unfinished: $('unfinished'), unfinishedEmpty: $('unfinished-empty'),
    serverInfo: $('server-info'), endpointLabel: $('endpoint-label'),
  }

  var file = null
  var upload = null
  var running = false
  var samples = []          // [time ms, bytes] of the last seconds, for the speed
  var lastBytes = 0

  el.endpointLabel.textContent = ENDPOINT

  // ---- helpers --------------------------------------------------------------
  function fmtBytes(n) {
    if (n == null || isNaN(n)) return '?'
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
    var i = 0
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
    return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i]
  }

  function fmtTime(s) {
    if (!isFinite(s) || s < 0) return ''
    s = Math.round(s)
    if (s < 60) return s + ' s'
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s'
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min'
  }

  function setStatus(text, kind) {
    el.status.textContent = text
    el.status.className = 'status' + (kind ? ' ' + kind : '')
  }

  function setButtons() {
    el.start.disabled = !file || running || !!(upload && upload.url)
    el.pause.disabled = !running
    el.resume.disabled = running || !upload || !upload.url
    el.cancel.disabled = !upload || !upload.url
    el.file.disabled = running
    el.chunk.disabled = running || !!(upload && upload.url)
    el.parallel.disabled = el.chunk.disabled
  }

  function resetSpeed(bytes) {
    samples = [[Date.now(), bytes || 0]]
  }

  function showProgress(sent, total) {
    var pct = total ? (sent / total) * 100 : 0
    el.bar.style.width = pct.toFixed(1) + '%'
    el.pct.textContent = (pct >= 99.95 && sent < total ? 99.9 : pct).toFixed(1) + ' %'
    el.bytes.textContent = fmtBytes(sent) + ' / ' + fmtBytes(total)

    var now = Date.now()
    samples.push([now, sent])
    while (samples.length > 2 && now - samples[0][0] > 3000) samples.shift()
    var first = samples[0]
    var dt = (now - first[0]) / 1000
    if (dt > 0.2 && sent >= first[1]) {
      var rate = (sent - first[1]) / dt
      el.speed.textContent = fmtBytes(rate) + '/s'
      el.eta.textContent = rate > 0 && total ? 'about ' + fmtTime((total - sent) / rate) + ' left' : ''
    }
    lastBytes = sent
  }

  function clearProgress() {
    el.bar.style.width = '0%'
    el.bar.classList.remove('done')
    el.pct.textContent = '0 %'
    el.bytes.textContent = file ? '0 B / ' + fmtBytes(file.size) : '0 B / 0 B'
    el.speed.textContent = ''
    el.eta.textContent = ''
  }

  function errText(err) {
    var msg = (err && err.message) || String(err)
    var res = err && err.originalResponse
    if (res && typeof res.getStatus === 'function' && res.getStatus()) {
      var body = ''
      try { body = (res.getBody() || '').trim() } catch (e) {}
      return 'server answered ' + res.getStatus() + (body ? ': ' + body.slice(0, 200) : '')
    }
    return msg
  }

  // ---- finished uploads (this browser's list) ------------------------------
  function loadFinished() {
    try { return JSON.parse(localStorage.getItem(FINISHED_KEY) || '[]') } catch (e) { return [] }
  }

  function saveFinished(list) {
    try { localStorage.setItem(FINISHED_KEY, JSON.stringify(list.slice(0, 50))) } catch (e) {}
  }

  function renderFinished() {
    var list = loadFinished()
    el.finished.textContent = ''
    el.finishedEmpty.hidden = list.length > 0
    list.forEach(function (item) {
      var li = document.createElement('li')
      var a = document.createElement('a')
      a.href = item.url
      a.textContent = item.name
      a.title = item.url
      li.appendChild(a)
      var meta = document.createElement('span')
      meta.className = 'meta'
      meta.textContent = fmtBytes(item.size) + ' · ' + new Date(item.at).toLocaleString() +
        (item.parts > 1 ? ' · ' + item.parts + ' parts' : '')
      li.appendChild(meta)
      var del = document.createElement('button')
      del.type = 'button'
      del.className = 'small'
      del.textContent = 'delete'
      del.title = 'DELETE the upload on the server'
      del.addEventListener('click', function () {
        del.disabled = true
        tus.Upload.terminate(item.url, { retryDelays: [] }).then(done, function (err) {
          var st = err && err.originalResponse && err.originalResponse.getStatus()
          if (st === 404 || st === 410) return done()
          del.disabled = false
          setStatus('Could not delete ' + item.name + ': ' + errText(err), 'error')
        })
        function done() {
          saveFinished(loadFinished().filter(function (x) { return x.url !== item.url }))
          renderFinished()
        }
      })
      li.appendChild(del)
      el.finished.appendChild(li)
    })
  }

  // ---- unfinished uploads (tus-js-client's localStorage entries) ----------
  function renderUnfinished() {
    var storage = tus.defaultOptions.urlStorage
    if (!storage || !storage.findAllUploads) return
    storage.findAllUploads().then(function (all) {
      el.unfinished.textContent = ''
      all = all.filter(function (u) { return u.uploadUrl || u.parallelUploadUrls })
      all.sort(function (a, b) { return Date.parse(b.creationTime) - Date.parse(a.creationTime) })
      el.unfinishedEmpty.hidden = all.length > 0
      all.forEach(function (u) {
        var li = document.createElement('li')
        var name = document.createElement('span')
        name.className = 'name'
        name.textContent = (u.metadata && u.metadata.filename) || '(no name)'
        li.appendChild(name)
        var meta = document.createElement('span')
        meta.className = 'meta'
        meta.textContent = fmtBytes(u.size) + ' · started ' +
          new Date(u.creationTime).toLocaleString()
        li.appendChild(meta)
        var forget = document.createElement('button')
        forget.type = 'button'
        forget.className = 'small'
        forget.textContent = 'forget'
        forget.title = 'remove from this browser (the server expires it later)'
        forget.addEventListener('click', function () {
          storage.removeUpload(u.urlStorageKey).then(renderUnfinished)
        })
        li.appendChild(forget)
        if (u.uploadUrl) {
          var del = document.createElement('button')
          del.type = 'button'
          del.className = 'small'
          del.textContent = 'delete'
          del.title = 'DELETE the upload on the server'
          del.addEventListener('click', function () {
            del.disabled = true
            var drop = function () { return storage.removeUpload(u.urlStorageKey).then(renderUnfinished) }
            tus.Upload.terminate(u.uploadUrl, { retryDelays: [] }).then(drop, drop)
          })
          li.appendChild(del)
        }
        el.unfinished.appendChild(li)
      })
    }).catch(function () {})
  }

  // ---- server info (OPTIONS) ------------------------------------------------
  function loadServerInfo() {
    var xhr = new XMLHttpRequest()
    xhr.open('OPTIONS', ENDPOINT)
    xhr.setRequestHeader('Tus-Resumable', '1.0.0')
    xhr.onload = function () {
      var rows = [['Status', xhr.status + ' ' + xhr.statusText]]
      ;['Tus-Resumable', 'Tus-Version', 'Tus-Extension', 'Tus-Max-Size',
        'Tus-Checksum-Algorithm'].forEach(function (h) {
        var v = xhr.getResponseHeader(h)
        if (v != null) rows.push([h, h === 'Tus-Max-Size' ? v + ' (' + fmtBytes(+v) + ')' : v])
      })
      el.serverInfo.textContent = ''
      rows.forEach(function (r) {
        var dt = document.createElement('dt')
        dt.textContent = r[0]
        var dd = document.createElement('dd')
        dd.textContent = r[1]
        el.serverInfo.appendChild(dt)
        el.serverInfo.appendChild(dd)
      })
    }
    xhr.onerror = function () {
      el.serverInfo.textContent = 'OPTIONS ' + ENDPOINT + ' failed (network error)'
    }
    xhr.send()
  }

  // ---- the upload -----------------------------------------------------------
  function pickFile(f) {
    if (running) return
    file = f || null
    upload = null
    clearProgress()
    if (file) {
      setStatus('Ready: ' + file.name + ' (' + fmtBytes(file.size) + '). ' +
        'If it was partly uploaded from this browser before, it resumes.')
    } else {
      setStatus('Pick a file.')
    }
    setButtons()
  }

  function makeUpload() {
    var chunk = parseInt(el.chunk.value, 10)
    var parallel = parseInt(el.parallel.value, 10) || 1
    var options = {
      endpoint: ENDPOINT,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
      removeFingerprintOnSuccess: true,
      onProgress: function (sent, total) { showProgress(sent, total) },
      onUploadUrlAvailable: function () { renderUnfinished() },
      onAfterResponse: function (req, res) {
        if (req.getMethod() === 'HEAD' && res.getStatus() < 300) {
          var off = parseInt(res.getHeader('Upload-Offset'), 10)
          if (!isNaN(off) && parallel === 1) {
            resetSpeed(off)
            showProgress(off, file.size)
            setStatus('Resuming: the server already has ' + fmtBytes(off) +
              '; sending the remaining ' + fmtBytes(file.size - off) + '.')
          }
        }
      },
      onError: function (err) {
        running = false
        setStatus('Upload failed: ' + errText(err) + '. Press Resume to try again.', 'error')
        setButtons()
        renderUnfinished()
      },
      onSuccess: function () {
        running = false
        showProgress(file.size, file.size)
        el.bar.classList.add('done')
        el.eta.textContent = ''
        var list = loadFinished()
        list.unshift({ name: file.name, size: file.size, url: upload.url, at: Date.now(), parts: parallel })
        saveFinished(list)
        renderFinished()
        renderUnfinished()
        setStatus('Done: ' + file.name + ' is at ' + upload.url, 'ok')
        upload = null
        setButtons()   // Upload again: a new upload of the same file
      },
    }
    if (chunk > 0) options.chunkSize = chunk
    if (parallel > 1) options.parallelUploads = parallel
    return new tus.Upload(file, options)
  }

  function start() {
    if (!file || running) return
    upload = makeUpload()
    running = true
    resetSpeed(0)
    setButtons()
    setStatus('Looking for an earlier upload of this file…')
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        previous.sort(function (a, b) { return Date.parse(b.creationTime) - Date.parse(a.creationTime) })
        upload.resumeFromPreviousUpload(previous[0])
        setStatus('Found an earlier upload of this file: asking the server for its offset…')
      } else {
        setStatus('Uploading ' + file.name + '…')
      }
      upload.start()
      setButtons()
    }, function (err) {
      setStatus('Uploading ' + file.name + ' (no resume data: ' + err + ')…')
      upload.start()
    })
  }

  function pause() {
    if (!upload || !running) return
    running = false
    upload.abort().then(function () {
      setStatus('Paused at ' + fmtBytes(lastBytes) + '. The server keeps what it received; ' +
        'Resume continues from its offset (also after a reload: pick the same file).')
      el.speed.textContent = ''
      el.eta.textContent = ''
      setButtons()
      renderUnfinished()
    })
    setButtons()
  }

  function resume() {
    if (!upload || running) return
    running = true
    resetSpeed(lastBytes)
    setStatus('Asking the server for its offset…')
    upload.start()   // HEAD on the upload URL, then PATCH from the server's offset
    setButtons()
  }

  function cancel() {
    if (!upload) return
    var u = upload
    running = false
    upload = null
    setStatus('Cancelling: deleting the upload on the server…')
    u.abort(true).then(function () {
      setStatus('Cancelled; the upload was deleted on the server.')
    }, function (err) {
      setStatus('Cancelled here, but the server said: ' + errText(err), 'error')
    }).then(function () {
      clearProgress()
      setButtons()
      renderUnfinished()
    })
    setButtons()
  }

  // ---- wiring ---------------------------------------------------------------
  if (typeof window.tus === 'undefined' || !tus.isSupported) {
    setStatus(typeof window.tus === 'undefined'
      ? 'tus-js-client did not load from /vendor/tus.min.js (tools/run.sh copies it there).'
      : 'This browser is not supported by tus-js-client.', 'error')
    return
  }

  el.file.addEventListener('change', function () { pickFile(el.file.files[0]) })
  el.start.addEventListener('click', start)
  el.pause.addEventListener('click', pause)
  el.resume.addEventListener('click', resume)
  el.cancel.addEventListener('click', cancel)

  el.drop.addEventListener('dragover', function (e) {
    e.preventDefault()
    el.drop.classList.add('over')
  })
  el.drop.addEventListener('dragleave', function () { el.drop.classList.remove('over') })
  el.drop.addEventListener('drop', function (e) {
    e.preventDefault()
    el.drop.classList.remove('over')
    if (!running && e.dataTransfer.files.length) pickFile(e.dataTransfer.files[0])
  })
  window.addEventListener('beforeunload', function (e) {
    if (running) { e.preventDefault(); e.returnValue = '' }
  })

  renderFinished()
  renderUnfinished()
  loadServerInfo()
  setButtons()
})()
