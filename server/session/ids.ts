import { randomBytes } from 'node:crypto'

/**
 * A random identifier: 128 bits, base64url (22 characters). Made in one piece: `randomUUID()`
 * builds its string from about twenty concatenated parts, which V8 keeps as a tree of cons
 * strings, about half a KiB for every idle connection whose session holds one.
 */
export function randomId (): string {
  return randomBytes(16).toString('base64url')
}
