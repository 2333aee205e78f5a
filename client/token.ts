import type { WebsocketProvider } from 'y-websocket'
import { TandemError } from '../shared/errors.js'

/** Returns a fresh token (see TandemClientOptions.token). */
export type TokenFunction = () => string | Promise<string>

/** First pause before calling a failed token function again; it doubles up to the next. */
const TOKEN_RETRY_MS = 250
const MAX_TOKEN_RETRY_MS = 10_000

/** What the token source needs of its client. */
export interface TokenHooks {
  /** True while the client is open (not leaving, left or destroyed). */
  open (): boolean
  /** A failure of the token function (TANDEM_ERR_TOKEN_REFRESH_FAILED). */
  error (error: TandemError): void
  /** Sends the fresh token on the open connection (a `refresh` message). */
  refresh (token: string): void
}

/**
 * How a client connects with its `token` option. A string (or none) is in the URL from the
 * start. A function is called for the first connection, for every reconnect (the provider
 * waits until a fresh token is in its URL, keeping its backoff), and when the server says the
 * token expires soon (the new one goes on the same connection). A failing function is retried,
 * 250 ms doubling to 10 s, each failure reported.
 */
export class TokenSource {
  /** True while the function runs for a refresh on the open connection. */
  private refreshing = false
  /** The pending retry or backoff, cleared on close. */
  private timer: ReturnType<typeof setTimeout> | undefined
  private readonly token: TokenFunction | undefined
  private readonly onClose = (event: { code: number } | null): void => this.reconnect(event)

  constructor (
    token: string | TokenFunction | undefined,
    private readonly provider: WebsocketProvider,
    private readonly maxBackoffTimeMs: number,
    private readonly hooks: TokenHooks
  ) {
    if (typeof token === 'string') this.use(token)
    if (typeof token !== 'function') return
    this.token = token
    provider.on('connection-close', this.onClose)
  }

  /** Connects the provider, with a fresh token first when `token` is a function. */
  connect (): void {
    if (this.token === undefined) return this.provider.connect()
    void this.fetch(this.token, Infinity).then(fresh => {
      if (fresh === undefined || !this.hooks.open()) return
      this.use(fresh)
      this.provider.connect()
    })
  }

  /** The server says the token expires at `expiresAt`: send a new one on this connection. */
  async refresh (expiresAt: number): Promise<void> {
    if (this.token === undefined || this.refreshing) return
    this.refreshing = true
    try {
      const fresh = await this.fetch(this.token, expiresAt)
      if (fresh === undefined || !this.hooks.open()) return
      // the next reconnect uses it too
      this.use(fresh)
      this.hooks.refresh(fresh)
    } finally {
      this.refreshing = false
    }
  }

  /**
   * The socket closed and the provider will reconnect: hold the reconnect until a fresh token
   * is in the URL, keeping the provider's backoff.
   */
  private reconnect (event: { code: number } | null): void {
    const { provider, token } = this
    if (token === undefined || !provider.shouldConnect || !this.hooks.open()) return
    // 4400-4499 are final: the provider stops and reports `closed`
    if (event !== null && event.code >= 4400 && event.code < 4500) return
    provider.shouldConnect = false
    const backoff = Math.min(2 ** (provider.wsUnsuccessfulReconnects + 1) * 100, this.maxBackoffTimeMs)
    const started = Date.now()
    void this.fetch(token, Infinity).then(async fresh => {
      if (fresh === undefined || !this.hooks.open() || provider.shouldConnect) return
      const wait = backoff - (Date.now() - started)
      if (wait > 0) await this.pause(wait)
      if (!this.hooks.open() || provider.shouldConnect) return
      this.use(fresh)
      provider.connect()
    })
  }

  /** Stops any pending retry and stops listening (the client's teardown). */
  close (): void {
    clearTimeout(this.timer)
    this.provider.off('connection-close', this.onClose)
  }

  private use (token: string): void {
    this.provider.params = { ...this.provider.params, token }
  }

  /**
   * Calls the token function until it answers (or `until` passes: undefined), reporting each
   * failure and waiting longer after each.
   */
  private async fetch (token: TokenFunction, until: number): Promise<string | undefined> {
    let delay = TOKEN_RETRY_MS
    while (this.hooks.open()) {
      try {
        const fresh = await token()
        if (typeof fresh !== 'string' || fresh === '') throw new Error('the token function returned no token')
        return fresh
      } catch (err) {
        if (!this.hooks.open()) return undefined
        this.hooks.error(new TandemError('TANDEM_ERR_TOKEN_REFRESH_FAILED', (err as Error)?.message ?? String(err), { cause: err }))
        if (Date.now() + delay >= until) return undefined
        await this.pause(delay)
        delay = Math.min(delay * 2, MAX_TOKEN_RETRY_MS)
      }
    }
    return undefined
  }

  private pause (ms: number): Promise<void> {
    return new Promise(resolve => { this.timer = setTimeout(resolve, ms) })
  }
}
