/** A request target split as Tandem reads it. */
export interface RequestTarget {
  /** The path exactly as sent: no `.` or `..` resolution, `//` kept, not percent-decoded. */
  path: string
  /** The query parameters. */
  query: URLSearchParams
}

/** `scheme://authority` of an absolute-form target (a request sent through a forward proxy). */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i

/**
 * Splits a request target (`req.url`) into its raw path and its query, the one way the
 * WebSocket upgrade and the HTTP routes both read it. WHATWG URL parsing is not used on purpose:
 * it resolves `/a/../b` to `/b` and reads `//x` as a host named x, so the document a client
 * named would not be the one it opened. A fragment, which no client should send, is dropped.
 */
export function splitTarget (target: string | undefined): RequestTarget {
  let rest = target ?? '/'
  const origin = ORIGIN.exec(rest)
  if (origin !== null) rest = rest.slice(origin[0].length) || '/'
  const hash = rest.indexOf('#')
  if (hash !== -1) rest = rest.slice(0, hash)
  const question = rest.indexOf('?')
  return question === -1
    ? { path: rest, query: new URLSearchParams() }
    : { path: rest.slice(0, question), query: new URLSearchParams(rest.slice(question + 1)) }
}
