// `npm run example:editor`: a Tandem server on its embedded default (SQLite under ./data) and
// Vite's dev server for the page, in one process. Ctrl-C stops both.
//   TANDEM_PORT=4000 EDITOR_PORT=8080 npm run example:editor    other ports (0 picks a free one)
//   TOKEN_LIFETIME=30 IDLE_TIMEOUT=600000 npm run example:editor  token seconds, idle ms (0: off)
// Sign-in is pretend: ./token hands any tab a short-lived JWT for the user it names; the page
// refreshes it in band before it expires. A real app checks its own session cookie there.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { SignJWT } from 'jose'
import { createServer as createTandem } from 'tandem/server'
import { createServer as createVite } from 'vite'

const secret = process.env.TANDEM_AUTH_SECRET ?? randomBytes(32).toString('base64url')
const tokenLifetimeSeconds = Number(process.env.TOKEN_LIFETIME ?? 60)
const tandemPort = Number(process.env.TANDEM_PORT ?? 1234)
const tandem = createTandem({
  port: tandemPort,
  authSecret: secret,
  sessionIdleTimeoutMs: Number(process.env.IDLE_TIMEOUT ?? 10 * 60_000),
  logLevel: process.env.LOG_LEVEL ?? 'info'
})
await tandem.listen()
const { address, port } = tandem.address

// GET ./token?user=&name=&color=: a JWT for that user, valid TOKEN_LIFETIME seconds
function serveToken (req, res) {
  const query = new URL(req.url ?? '/', 'http://x').searchParams
  const user = query.get('user') ?? ''
  if (!/^[\w-]{1,64}$/.test(user)) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('user must be 1 to 64 letters, digits, - or _')
    return
  }
  const now = Math.floor(Date.now() / 1000)
  new SignJWT({ sub: user, name: (query.get('name') ?? user).slice(0, 64), color: query.get('color') ?? undefined })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(now)
    .setExpirationTime(now + tokenLifetimeSeconds)
    .sign(new TextEncoder().encode(secret))
    .then(token => res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(token),
      () => res.writeHead(500).end())
}

const vite = await createVite({
  // before Vite's own middlewares, so that ./token is never answered with the page
  plugins: [{ name: 'token-endpoint', configureServer: server => { server.middlewares.use('/token', serveToken) } }],
  configFile: fileURLToPath(new URL('./vite.config.js', import.meta.url)),
  server: { host: '127.0.0.1', port: Number(process.env.EDITOR_PORT ?? 5173) }
})
await vite.listen()

const page = new URL(vite.resolvedUrls.local[0])
if (port !== 1234) page.searchParams.set('server', `ws://${address}:${port}`)
console.log(`Tandem server  ws://${address}:${port} (SQLite under ./data; tokens live ${tokenLifetimeSeconds} s)`)
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
