import { randomFillSync } from 'node:crypto'

/** Ids drawn from one random fill: a fill costs a system call, about as much as the id itself. */
const POOL_IDS = 256
const ID_BYTES = 16
const pool = Buffer.alloc(POOL_IDS * ID_BYTES)
let next = POOL_IDS

/**
 * A random identifier: 128 bits, base64url (22 characters). Made in one piece: `randomUUID()`
 * builds its string from about twenty concatenated parts, which V8 keeps as a tree of cons
 * strings, about half a KiB for every idle connection whose session holds one. The bytes come
 * from a pool filled 256 ids at a time (a connection storm makes two ids per connection), and
 * each id's bytes are used once.
 */
export function randomId (): string {
  if (next === POOL_IDS) {
    randomFillSync(pool)
    next = 0
  }
  const start = next++ * ID_BYTES
  return pool.toString('base64url', start, start + ID_BYTES)
}
