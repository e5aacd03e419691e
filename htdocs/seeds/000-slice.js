// Verbatim from design document 000 (../shared/seeds/000_3a481f149672c808.txt),
// section "2.3 完整代码 / 网页代码": the <script> of the slice upload page
// (all chunks at once to /sliceUpload, then /sliceMerge). Do not edit.
        let input = document.querySelector("#input")
        let video = document.querySelector("#video")
        let progress = document.querySelector("#progress")
        // 切片进度条的元素的引用
        let progresses = []
        let file = null
        // 每一个切片大小限制为5MB
        const SLICE_SIZE = 5 * 1024 * 1024

        // input文件选择事件
        function handleChanged() {
            file = event.target.files[0]
            video.src = URL.createObjectURL(file)
        }

        // 文件选择事件
        function handleSelect() {
            input.click()
        }

        // 为每一个切片创建一个进度条并插入DOM
        function makeProgress(length) {
            let ar = []
            // 创建元素
            for(let i = 0; i < length; i ++) {
                let div = document.createElement("div")
                let span = document.createElement("span")
                span.textContent = `${file.name}-${i}切片`
                let progress = document.createElement("progress")
                progress.value = 0
                div.prepend(span)
                div.append(progress)
                ar.push(div)
            }
            // 插入DOM并更新切片进度条的引用
            ar.forEach((div, index) => {
                video.before(div)
                progresses[index] = div.lastElementChild
            })
        }

        // 上传事件
        async function handleUpload() {
            // 获取文件的切片
            let chunks = fileSlice(file)
            // 为每一个切片创建一个进度条
            makeProgress(chunks.length)
            // 更新总进度条总量
            progress.max = file.size
            // 获取封装好的网络请求数组
            let promises = sliceRequestMaker("post", "/sliceUpload", file.name, chunks)
            // 并行处理
            await Promise.all(promises).then(console.log, console.log)
            // 最后发送一个合并分片请求
            await fetch("/sliceMerge", {
                method: "post",
                body: JSON.stringify({
                    name: file.name,
                    size: SLICE_SIZE
                })
            })
        }

        // 分片上传的网络请求的封装，最后一个参数为已经切好的文件片段数组，倒数第二个参数为这些分片共用的标识名称，就像IP数据报中的标识字段
        function sliceRequestMaker(method, url, name, chunkList) {
            let promises = []
            chunkList.forEach((chunk, index) => {
                let xhr = new XMLHttpRequest()
                // 用promise封装xhr，以便于使用all方法，使用xhr而不用fetch是用于获取上传进度
                promises.push(new Promise((res, rej) => {
                    xhr.open(method, url)
                    let fd = new FormData
                    // body为chunk分片和分片的序号和文件名称
                    fd.append("chunk", chunk)
                    fd.append("index", index)
                    fd.append("name", name)
                    // 监听每一个分片的上传事件，并记录上传进度，监听事件要在xhr.send之前
                    xhr.upload.onprogress = function(event) {
                        progresses[index].max = event.total
                        progresses[index].value = event.loaded
                        progress.value = progresses.reduce((a, b) => a + b.value, 0)
                    }
                    xhr.onload = function() {
                        if(xhr.readyState === 4 && xhr.status === 200)
                            res(xhr.response)
                        else
                            rej("请求失败")
                    }

                    xhr.send(fd)
                }))
            })
            return promises
        }

        // 文件切片
        function fileSlice(file) {
            let pos = 0
            let chunks = []
            while(pos < file.size) {
                // slice可以自动处理第二个参数越界
                chunks.push(file.slice(pos, pos + SLICE_SIZE))
                pos += SLICE_SIZE
            }
            return chunks
        }
