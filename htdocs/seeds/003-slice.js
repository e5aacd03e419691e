// A jquery.slice.js-style uploader for design document 003
// (../shared/seeds/003_5317fd1545d42d73.txt). The document names the plugin
// ("封装的 jquery.slice.js插件") but gives only its key code, section
// "前端文件的分片" (marked VERBATIM below); the rest is this page's own
// reconstruction of what the document describes: chunks posted one after
// another as multipart (data, index, name, total) with index 1..total (the
// document's server reads temp/<name><i> for i = 1..total and assembles
// when the last one lands), and "前端实现记录断开的上传的片的序号，同时在重新
// 上传时从该序号接着上传": the page records the chunks sent (localStorage) and
// after an interruption continues from there.
/* global jQuery */
(function ($) {
  'use strict'

  function keyOf (file) {
    return 'slice003:' + file.name + '-' + file.size + '-' + file.lastModified
  }

  function Slicer (file, opts) {
    this.file = file
    this.opts = opts
    this.shardSize = opts.shardSize
    this.total = Math.ceil(file.size / this.shardSize)
    this.done = JSON.parse(localStorage.getItem(keyOf(file)) || '[]')
    this.paused = true
  }

  Slicer.prototype.next = function () {
    for (let i = 0; i < this.total; i++) {
      if (this.done.indexOf(i) < 0) return i
    }
    return -1
  }

  Slicer.prototype.send = function (item) {
    const file = this.file
    const size = file.size
    const shardSize = this.shardSize
    // ---- VERBATIM (document 003, 前端文件的分片, 关键代码)
    let i = item
    let start = i * shardSize,
        end = Math.min(size, start + shardSize);

    let form = new FormData();
    form.append("data", file.slice(start, end));
    // ---- end of the verbatim code
    form.append('index', i + 1)
    form.append('name', file.name)
    form.append('total', this.total)
    const self = this
    this.xhr = $.ajax({ url: this.opts.url, type: 'POST', data: form,
      processData: false, contentType: false,
      xhr: function () {
        const x = new XMLHttpRequest()
        x.upload.onprogress = e => self.opts.progress(start + e.loaded, size)
        return x
      } })
    return this.xhr
  }

  Slicer.prototype.run = function () {
    const i = this.next()
    if (i < 0) {
      localStorage.removeItem(keyOf(this.file))
      this.opts.success(this.file)
      return
    }
    if (this.paused) return
    this.send(i).then(() => {
      this.done.push(i)
      localStorage.setItem(keyOf(this.file), JSON.stringify(this.done))
      this.opts.progress(this.done.length * this.shardSize, this.file.size)
      this.run()
    }, (xhr, status) => {
      if (status !== 'abort') this.opts.error(xhr.status + ' ' + xhr.statusText)
    })
  }

  Slicer.prototype.start = function () { this.paused = false; this.run() }
  Slicer.prototype.pause = function () {
    this.paused = true
    if (this.xhr) this.xhr.abort()
  }

  // $("#file").sliceUpload({url, shardSize, progress, success, error}) -> Slicer
  $.fn.sliceUpload = function (opts) {
    const file = this[0].files[0]
    return file ? new Slicer(file, $.extend({ url: '/sliceUpload', shardSize: 1024 * 1024 }, opts)) : null
  }
})(jQuery)
