// Verbatim from design document 000 (../shared/seeds/000_3a481f149672c808.txt),
// section "1.非持久的断点下载 / 客户端代码": the <script> of the fetch download
// with pause (AbortController) and resume (Range: bytes=N). Do not edit.
    let progress = document.querySelector("#progress")
    let video = document.querySelector("#video")
    let controller = null

    // 断点重传信息
    let sum = 0

    // 中断请求函数
    function handleAbort() {
        controller.abort()
    }

    // 发起请求函数
    function handleClick() {
        controller = new AbortController()
        let signal = controller.signal
        fetch("/test.mp4", {
            signal: signal,
            headers: {
                "Range": `bytes=${sum}`
            }
        })
            .then(res => {
                // 获取response.body的可读流的读锁
                let streamLock = res.body.getReader()
                // 进度条的总长度为数据总字节数
                progress.max = parseInt(res.headers.get("Content-Length"))
                // 创建可控可读流
                return new Response(new ReadableStream({
                    async start(control) {
                       while(true) {
                           // res.body.getReader().read()相当于调用异步迭代器的next()方法
                           let { done, value } = await streamLock.read()
                           if(done) {
                               // 可控可读流关闭
                               control.close()
                               break
                           } else {
                               // sum记录已读取的字节数，用于维护请求头的Range字段和进度条的进度
                               sum += value.length
                               progress.value = sum
                               // 加入可控可读流
                               control.enqueue(value)
                           }
                       }
                    }
                }))
            })
            .then(res =>  res.blob()) // response.blob可以自动拼接流中的数据，我们不需要处理分片
            .then(res => {
                // 下载完成后展示
                video.src = URL.createObjectURL(res)
            })
    }
