/**
 * JWT verification in a worker thread (JwtPool): jose's jwtVerify costs 40-70 µs of CPU per
 * token, which a burst of refreshes (thousands of tokens sharing an expiry) would otherwise
 * take from the event loop that relays updates.
 *
 * Says `{ ready }` once started. Gets batches `{ ids, tokens }` and answers each with one `{ ids, results }`, in order: a
 * result is the token's payload (claims), or the string 'expired' or 'invalid'. The HMAC key is
 * imported once (from workerData.secret). Plain ESM, so that the same file runs from server/
 * under the tests and from dist/.
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { jwtVerify, errors } from 'jose'

// This thread runs at a lower priority than the event loop (Linux: a thread has its own nice
// value, and /proc/thread-self names it): when the cores are busy, the updates the event loop
// relays get them first. A token waiting here is a refresh (it has until its exp) or an upgrade.
try {
  const thread = Number(readlinkSync('/proc/thread-self').split('/').pop())
  setPriority(thread, Math.min(19, getPriority(thread) + 10))
} catch {
  // elsewhere, the same priority as the event loop
}

const key = globalThis.crypto.subtle.importKey('raw', new TextEncoder().encode(workerData.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])

const verify = async (token) => {
  try {
    const { payload } = await jwtVerify(token, await key, { algorithms: ['HS256'] })
    return payload
  } catch (err) {
    return err instanceof errors.JWTExpired ? 'expired' : 'invalid'
  }
}

// ready once the key is imported (JwtPool.warm waits for this)
key.then(() => parentPort.postMessage({ ready: true }), () => parentPort.postMessage({ ready: false }))

parentPort.on('message', async ({ ids, tokens }) => {
  const results = await Promise.all(tokens.map(verify))
  parentPort.postMessage({ ids, results })
})
