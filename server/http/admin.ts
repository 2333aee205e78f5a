import type { IncomingMessage } from 'node:http'
import { sameSecret } from '../auth/secret.js'
import type { RouteResult } from './router.js'

/**
 * The one guard of the admin endpoints (every path under /api, routed or not): a request passes
 * with `Authorization: Bearer <token>`, else it gets 401 with TANDEM_ERR_UNAUTHENTICATED.
 */
export function adminGuard (token: string): (req: IncomingMessage) => RouteResult | undefined {
  return req => {
    const header = req.headers.authorization
    const match = typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null
    if (match !== null && sameSecret(match[1] as string, token)) return undefined
    return {
      status: 401,
      body: { error: 'TANDEM_ERR_UNAUTHENTICATED: admin token required (Authorization: Bearer <token>)' },
      headers: { 'www-authenticate': 'Bearer realm="tandem"' }
    }
  }
}
