import { isTandemError } from '../../shared/errors.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { splitTarget } from '../transport/request-target.js'

/** A route handler: returns the status and JSON body (or text or bytes with a content type). */
export type RouteResult = { status: number, body: unknown, contentType?: string, headers?: Record<string, string> }
export type Route = (req: IncomingMessage, params: Record<string, string>) => RouteResult | Promise<RouteResult>
/** Runs before the routes under its prefix: returns a result to answer with, or undefined to pass. */
export type Guard = (req: IncomingMessage) => RouteResult | undefined

/** Per parameter, a test its raw (still percent-encoded) value must fail for the route to match. */
export type Exclusions = Record<string, RegExp>

interface CompiledRoute {
  method: string
  pattern: RegExp
  keys: string[]
  handler: Route
  exclude: Exclusions
}

/**
 * A tiny router for Tandem's few endpoints: `:name` segments are percent-decoded and may not
 * contain `/` unless written `:name*`.
 */
export class Router {
  private readonly routes: CompiledRoute[] = []
  private readonly guards: Array<{ prefix: string, check: Guard }> = []

  /**
   * Guards every path equal to `prefix` or under `prefix/`, routed or not (so an unauthorized
   * caller cannot even learn which routes exist).
   */
  guard (prefix: string, check: Guard): this {
    this.guards.push({ prefix, check })
    return this
  }

  /**
   * Adds a route, e.g. `add('GET', '/api/documents/:name/locks', handler)`. `exclude` anchors a
   * catch-all parameter: the route does not match a path where that parameter's raw value matches
   * the pattern (so `DELETE /api/documents/:name*` cannot take `.../locks/r`, whatever the order
   * routes were added in). A `/` written as `%2F` is part of a value, never a segment.
   */
  add (method: string, path: string, handler: Route, exclude: Exclusions = {}): this {
    const keys: string[] = []
    const source = path.replace(/:(\w+)(\*?)/g, (_, key: string, star: string) => {
      keys.push(key)
      return star === '*' ? '(.+)' : '([^/]+)'
    })
    this.routes.push({ method, pattern: new RegExp(`^${source}$`), keys, handler, exclude })
    return this
  }

  /**
   * Handles a request; answers 404 or 405 when no route fits, 500 when a handler throws. HEAD
   * is answered wherever GET is, with GET's status and headers and no body (load balancers
   * probe /healthz and /readyz with HEAD). Paths are read raw (see splitTarget), as the
   * WebSocket upgrade reads them, so a document name means the same document on both.
   */
  async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pathname = splitTarget(req.url).path
    const method = req.method === 'HEAD' ? 'GET' : req.method
    let result: RouteResult = { status: 404, body: { error: 'not found' } }
    let pathMatched = false
    try {
      for (const { prefix, check } of this.guards) {
        if (pathname !== prefix && !pathname.startsWith(`${prefix}/`)) continue
        const refusal = check(req)
        if (refusal !== undefined) return send(res, refusal)
      }
      for (const route of this.routes) {
        const match = route.pattern.exec(pathname)
        if (match === null) continue
        if (route.keys.some((key, i) => route.exclude[key]?.test(match[i + 1] as string) === true)) continue
        pathMatched = true
        if (route.method !== method) continue
        const params: Record<string, string> = {}
        route.keys.forEach((key, i) => { params[key] = decodeURIComponent(match[i + 1] as string) })
        result = await route.handler(req, params)
        pathMatched = false
        break
      }
      if (pathMatched) result = { status: 405, body: { error: 'method not allowed' } }
    } catch (err) {
      // a TandemError answers with the registry's status and its code; anything else is a bug
      if (isTandemError(err)) {
        result = { status: err.httpStatus, body: { error: `${err.code}: ${err.message}`, code: err.code } }
      } else {
        const status = (err as { statusCode?: number }).statusCode ?? (err instanceof URIError ? 400 : 500)
        result = { status, body: { error: status === 500 ? 'internal error' : (err as Error).message } }
      }
    }
    send(res, result)
  }
}

function send (res: ServerResponse, result: RouteResult): void {
  // bytes go as they are (with their content type); anything else as JSON, or as text with one;
  // a HEAD answer has GET's headers, Content-Length included, and no body (Node drops it)
  const text = result.body instanceof Uint8Array ? result.body
    : result.contentType === undefined ? JSON.stringify(result.body) : String(result.body)
  res.writeHead(result.status, {
    'content-type': result.contentType ?? 'application/json; charset=utf-8',
    'content-length': typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength,
    'cache-control': 'no-store',
    ...result.headers
  })
  res.end(text)
}
