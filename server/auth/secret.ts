import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Compares two secrets in constant time, whatever their lengths: both are hashed first, so
 * neither the bytes nor the length of the expected secret leak through timing. The one compare
 * of the server (admin token, resume secrets).
 */
export function sameSecret (a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** The hash kept of a resume secret: SHA-256, hex (the secret itself is never stored). */
export function hashSecret (secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}
