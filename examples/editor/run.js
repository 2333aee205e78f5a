// `npm run example:editor`: a Tandem server on its embedded default (SQLite under ./data) and
// Vite's dev server for the page, in one process. Ctrl-C stops both.
//   TANDEM_PORT=4000 EDITOR_PORT=8080 npm run example:editor    other ports (0 picks a free one)
import { fileURLToPath } from 'node:url'
import { createServer as createTandem } from 'tandem/server'
import { createServer as createVite } from 'vite'

const tandemPort = Number(process.env.TANDEM_PORT ?? 1234)
const tandem = createTandem({ port: tandemPort, logLevel: process.env.LOG_LEVEL ?? 'info' })
await tandem.listen()
const { address, port } = tandem.address

const vite = await createVite({
  configFile: fileURLToPath(new URL('./vite.config.js', import.meta.url)),
  // the History panel calls Tandem's /api from the page's origin
  server: { host: '127.0.0.1', port: Number(process.env.EDITOR_PORT ?? 5173), proxy: { '/api': `http://${address}:${port}` } }
})
await vite.listen()

const page = new URL(vite.resolvedUrls.local[0])
if (port !== 1234) page.searchParams.set('server', `ws://${address}:${port}`)
console.log(`Tandem server  ws://${address}:${port} (SQLite under ./data)`)
console.log(`Editor         ${page.href}`)
console.log('Open the editor in two windows. Ctrl-C stops both.')

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    if (stopping) return
    stopping = true
    await vite.close()
    await tandem.close()
    process.exit(0)
  })
}
