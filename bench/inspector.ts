import WebSocket from 'ws'

/**
 * The V8 heap a Node process (started with `--inspect`, its inspector at `url`) holds after full
 * collections: live objects only, whatever the young generation's size or the garbage waiting.
 * Works for any Node server, so every server is measured alike.
 */
export async function heapAfterGc (url: string): Promise<number> {
  const ws = new WebSocket(url)
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  let nextId = 0
  const call = (method: string): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const id = ++nextId
    const onMessage = (data: Buffer): void => {
      const message = JSON.parse(data.toString()) as { id?: number, result?: Record<string, unknown>, error?: { message: string } }
      if (message.id !== id) return
      ws.off('message', onMessage)
      if (message.error !== undefined) reject(new Error(`${method}: ${message.error.message}`))
      else resolve(message.result ?? {})
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ id, method }))
  })
  try {
    // twice: what the first collection's finalizers and weak callbacks let go goes with the second
    await call('HeapProfiler.collectGarbage')
    await call('HeapProfiler.collectGarbage')
    const { usedSize } = await call('Runtime.getHeapUsage')
    if (typeof usedSize !== 'number') throw new Error('Runtime.getHeapUsage gave no usedSize')
    return usedSize
  } finally {
    ws.close()
  }
}
