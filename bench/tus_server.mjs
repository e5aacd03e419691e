#!/usr/bin/env node
// tus_server.mjs: @tus/server with @tus/file-store for bench/run.py.
//
//   node bench/tus_server.mjs --port N --dir DATA
//
// Listens on 127.0.0.1 only, endpoint /files/, files in DATA/<id>.
// Prints "ready" once listening; stops on SIGTERM/SIGINT.

import { parseArgs } from 'node:util'
import { Server } from '@tus/server'
import { FileStore } from '@tus/file-store'

const { values: a } = parseArgs({
  options: { port: { type: 'string' }, dir: { type: 'string' } },
})

const server = new Server({
  path: '/files',
  datastore: new FileStore({ directory: a.dir }),
})
const http = server.listen({ host: '127.0.0.1', port: Number(a.port) }, () => {
  process.stdout.write('ready\n')
})
http.requestTimeout = 0
http.headersTimeout = 60000
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
