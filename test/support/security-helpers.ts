import { onTestFinished } from 'vitest'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { readFrame, type Frame } from '../../shared/messages.js'

/** Signs an HS256 JWT for tests; `exp` in seconds from now (negative: already expired). */
export async function signToken (secret: string, claims: Record<string, unknown>, expInSeconds = 3600): Promise<string> {
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expInSeconds)
    .sign(new TextEncoder().encode(secret))
}

/** The outcome of a WebSocket handshake: the HTTP status of a refusal, or 'open' (then closed). */
export function upgrade (url: string, options: WebSocket.ClientOptions & { protocols?: string | string[] } = {}): Promise<{ status: number | 'open', body: string }> {
  return new Promise((resolve, reject) => {
    const { protocols, ...rest } = options
    const ws = new WebSocket(url, protocols, rest)
    onTestFinished(() => ws.terminate())
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        ws.terminate()
        resolve({ status: res.statusCode ?? 0, body })
      })
    })
    ws.once('open', () => {
      ws.close(1000)
      resolve({ status: 'open', body: '' })
    })
    ws.on('error', reject) // after a resolve this is a no-op; `on` so a late error is never unhandled
  })
}

/** `ws://host:port/<encoded doc>?query` */
export function docUrl (base: string, doc: string, query: Record<string, string> = {}): string {
  const path = doc.split('/').map(encodeURIComponent).join('/')
  const search = new URLSearchParams(query).toString()
  return `${base}/${path}${search === '' ? '' : `?${search}`}`
}

/** Collects every frame a raw client receives from the moment it is called (call it before 'open'). */
export function collectFrames (ws: WebSocket): { all: Frame[], next: () => Promise<Frame> } {
  const all: Frame[] = []
  let read = 0
  const waiters: Array<() => void> = []
  ws.on('message', (data: Buffer) => {
    all.push(readFrame(data))
    waiters.shift()?.()
  })
  const next = async (): Promise<Frame> => {
    if (read >= all.length) await new Promise<void>(resolve => waiters.push(resolve))
    return all[read++] as Frame
  }
  return { all, next }
}
