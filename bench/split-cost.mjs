import { readFileSync } from 'node:fs'
const mod = await import(process.argv[2] ?? '/work/main/dist/shared/split-update.js')
const Y = await import('yjs')
const update = new Uint8Array(readFileSync(process.argv[3] ?? '/tmp/tandem-big-documents/v1-104857600-22.yjs'))
for (let i = 0; i < 2; i++) {
  let t = performance.now()
  const d = Y.decodeUpdate(update)
  const dec = performance.now() - t
  t = performance.now()
  const parts = mod.splitUpdate(update, 64 * 1024)
  console.log('decode', dec.toFixed(0), 'ms; split', (performance.now() - t).toFixed(0), 'ms', parts.length, 'parts', d.structs.length, 'structs')
}
