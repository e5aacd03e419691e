// Page glue for flow.html and resumable.html: @flowjs/flow.js and
// resumablejs, both unchanged from npm (served from /vendor/), uploading to
// mod_resumable's "flow" front end at /flow (conf/seeds.conf). The library's
// own test GETs make an upload resume after a pause or a reload: pick the
// same file again and only the chunks the server lacks are sent.
/* global Flow, Resumable */
(function () {
  'use strict'
  const $ = id => document.getElementById(id)
  const lib = document.body.dataset.lib   // "flow" or "resumable"
  const opts = { target: '/flow', chunkSize: 1024 * 1024, simultaneousUploads: 3,
    testChunks: true, forceChunkSize: false }
  const r = lib === 'flow' ? new Flow(opts) : new Resumable(opts)

  const nameOf = file => file.name || file.fileName

  function status (text, cls) {
    $('status').textContent = text
    $('status').className = 'status' + (cls ? ' ' + cls : '')
  }

  function chunkBars (file) {
    const box = $('chunks')
    box.textContent = ''
    file.chunks.forEach(() => {
      const d = document.createElement('div')
      d.className = 'chunk'
      box.append(d)
    })
  }

  function paintChunks (file) {
    const cells = $('chunks').children
    file.chunks.forEach((c, i) => {
      const p = c.progress()
      if (cells[i]) cells[i].style.background = 'linear-gradient(to right, var(--accent) ' +
        (p * 100) + '%, #e9edf5 0)'
    })
  }

  function progress () {
    const p = r.progress()
    $('bar').style.width = (p * 100).toFixed(1) + '%'
    $('pct').textContent = (p * 100).toFixed(1) + ' %'
    if (r.files[0]) paintChunks(r.files[0])
  }

  r.assignBrowse($('file'))
  r.on(lib === 'flow' ? 'filesSubmitted' : 'filesAdded', () => {
    const file = r.files[r.files.length - 1]
    $('video').src = URL.createObjectURL(file.file)
    chunkBars(file)
    status('ready: ' + nameOf(file) + ' (' + file.size + ' bytes, ' +
      file.chunks.length + ' chunks)')
    $('start').disabled = false
  })
  r.on('fileProgress', progress)
  r.on('progress', progress)
  r.on('fileSuccess', file => {
    progress()
    $('bar').classList.add('done')
    const url = '/upload/' + encodeURIComponent(nameOf(file))
    status('')
    $('status').className = 'status ok'
    $('status').append('uploaded: ')
    const a = document.createElement('a')
    a.id = 'link'
    a.href = url
    a.textContent = url
    $('status').append(a)
    $('pause').disabled = $('resume').disabled = $('cancel').disabled = true
  })
  r.on('fileError', (file, msg) => status('error: ' + msg, 'error'))

  $('start').onclick = () => {
    r.upload()
    status('uploading')
    $('start').disabled = $('resume').disabled = true
    $('pause').disabled = $('cancel').disabled = false
  }
  $('pause').onclick = () => {
    r.pause()
    status('paused at ' + (r.progress() * 100).toFixed(1) + ' %')
    $('pause').disabled = true
    $('resume').disabled = false
  }
  $('resume').onclick = () => {
    if (lib === 'flow') r.resume()   // Flow.js pauses per file
    else r.upload()
    status('uploading')
    $('pause').disabled = false
    $('resume').disabled = true
  }
  $('cancel').onclick = () => {
    r.cancel()
    status('stopped: pick the file again to resume from the server\'s chunks')
    $('chunks').textContent = ''
    $('start').disabled = $('pause').disabled = $('resume').disabled = $('cancel').disabled = true
  }
  window.rsUploader = r
})()
