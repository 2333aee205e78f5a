// The server side of idle-heap.mjs: a Tandem server of the build in argv[2] (its dist/), in this
// process (run with --expose-gc), answering its parent's requests for memory figures.
import v8 from 'node:v8'
import inspector from 'node:inspector'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [dist, store = 'sqlite'] = process.argv.slice(2)
const { createServer } = await import(join(dist, 'server', 'index.js'))
const options = { port: 0, host: '127.0.0.1', logLevel: 'silent', maxConnectionsPerIp: 0 }
if (store === 'memory') options.persistence = 'memory'
else options.dataDir = mkdtempSync(join(tmpdir(), 'idle-heap-'))
const server = createServer(options)
await server.listen()

const inspect = new inspector.Session()
inspect.connect()
const post = (method, params) => new Promise((resolve, reject) => inspect.post(method, params, (err, res) => err ? reject(err) : resolve(res)))

/** Heap and RSS as they are (garbage included), then after full collections. */
function memory () {
  const raw = process.memoryUsage()
  for (let i = 0; i < 4; i++) global.gc()
  const collected = process.memoryUsage()
  return { rawHeap: raw.heapUsed, rawRss: raw.rss, heap: collected.heapUsed, rss: collected.rss }
}

process.on('message', async msg => {
  if (msg.cmd === 'memory') process.send(memory())
  if (msg.cmd === 'snapshot') process.send({ file: v8.writeHeapSnapshot(msg.file) })
  // every allocation, also what GC collected since: the garbage each connection makes
  if (msg.cmd === 'sample') process.send(await post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }))
  if (msg.cmd === 'sampled') {
    const { profile } = await post('HeapProfiler.stopSampling')
    writeFileSync(msg.file, JSON.stringify(profile))
    process.send({ file: msg.file })
  }
  if (msg.cmd === 'exit') process.exit(0)
})
process.send({ port: server.address.port })
