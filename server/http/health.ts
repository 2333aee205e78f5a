import type { Router } from './router.js'

/** What the health endpoints read of the server. */
export interface HealthSource {
  /** The server's lifecycle status (`listening` when it accepts connections). */
  status (): string
  /** False while a configured Redis is unreachable (undefined without Redis). */
  redisReady (): boolean | undefined
}

/**
 * `GET /healthz`: the process answers. `GET /readyz`: it accepts connections; 503 while
 * starting or draining, and while a configured Redis is unreachable (local clients are still
 * served then, but a balancer should prefer the peers). Not behind the admin token.
 */
export function registerHealth (router: Router, source: HealthSource): void {
  router
    .add('GET', '/healthz', () => ({ status: 200, body: { status: 'ok' } }))
    .add('GET', '/readyz', () => {
      const status = source.status()
      if (status !== 'listening') return { status: 503, body: { status } }
      if (source.redisReady() === false) return { status: 503, body: { status: 'redis-unreachable' } }
      return { status: 200, body: { status: 'ready' } }
    })
}
