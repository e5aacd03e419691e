// Page glue shared by the seed pages: a <video> preview whose source is not
// a playable video (any file may be uploaded) gives way to a short note
// instead of an empty black player.
(function () {
  'use strict'
  document.querySelectorAll('video').forEach(v => {
    const note = document.createElement('p')
    note.className = 'note preview-note'
    note.textContent = 'No preview: the file is not a video this browser can play.'
    note.hidden = true
    v.after(note)
    v.addEventListener('error', () => {
      if (!v.getAttribute('src')) return
      v.style.display = 'none'
      note.hidden = false
    })
    v.addEventListener('loadedmetadata', () => {
      v.style.display = 'block'
      note.hidden = true
    })
  })
})()
