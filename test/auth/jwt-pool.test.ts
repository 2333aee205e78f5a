import { describe, expect, onTestFinished, test } from 'vitest'
import { SignJWT } from 'jose'
import { JwtPool } from '../../server/auth/jwt-pool.js'
import { isTandemError } from '../../shared/errors.js'
import { signToken, upgrade } from '../support/security-helpers.js'
import { startTandem } from '../support/cli.js'

const SECRET = 'jwt-pool-secret-0123456789-0123456789'

function pool (size?: number): JwtPool {
  const made = new JwtPool(SECRET, size)
  onTestFinished(() => made.close())
  return made
}

/** The message of the refusal `verify` rejects with (TANDEM_ERR_UNAUTHENTICATED), or 'accepted'. */
async function refusal (verifier: JwtPool, token: string): Promise<string> {
  try {
    await verifier.verify(token)
    return 'accepted'
  } catch (err) {
    expect(isTandemError(err, 'TANDEM_ERR_UNAUTHENTICATED')).toBe(true)
    return (err as Error).message.replace(/^.*: /, '')
  }
}

describe('JWT verification in worker threads', () => {
  test('every token of a burst (more than one message to the workers) gets its own claims', async () => {
    const verifier = pool(2)
    const tokens = await Promise.all(Array.from({ length: 700 }, (_, i) => signToken(SECRET, { sub: `user-${i}`, name: `User ${i}` })))
    const claims = await Promise.all(tokens.map(token => verifier.verify(token)))
    expect(claims.map(c => c.sub)).toEqual(tokens.map((_, i) => `user-${i}`))
    expect(claims[699]).toMatchObject({ name: 'User 699' })
    expect(typeof claims[0]?.exp).toBe('number')
  })

  test('expired, forged, malformed tokens and other algorithms are refused, each with its reason', async () => {
    const verifier = pool()
    const hs512 = await new SignJWT({ sub: 'ada' }).setProtectedHeader({ alg: 'HS512' }).sign(new TextEncoder().encode(SECRET))
    const answers = await Promise.all([
      refusal(verifier, await signToken(SECRET, { sub: 'ada' }, -60)),
      refusal(verifier, await signToken('another-secret-0123456789-0123456789', { sub: 'ada' })),
      refusal(verifier, 'not.a.jwt'),
      refusal(verifier, hs512),
      refusal(verifier, await signToken(SECRET, { sub: 'ada' }))
    ])
    expect(answers).toEqual(['token expired', 'invalid token', 'invalid token', 'invalid token', 'accepted'])
  })

  test('closing fails the tokens in flight and refuses new ones; a warm pool answers at once', async () => {
    const verifier = pool()
    await verifier.warm()
    const token = await signToken(SECRET, { sub: 'ada' })
    expect((await verifier.verify(token)).sub).toBe('ada')
    const inFlight = verifier.verify(token)
    verifier.close()
    await expect(inFlight).rejects.toThrow(/closed/)
    await expect(verifier.verify(token)).rejects.toThrow(/closed/)
    // not a refusal of the credentials: the authenticator failed (a live session keeps its own)
    await verifier.verify(token).catch((err: unknown) => expect(isTandemError(err)).toBe(false))
  })

  test('the tandem command with --auth-secret starts its worker, stays up and admits a token', async () => {
    // the worker is held open until ready: with it unreferenced, the process ran out of work
    // while listen waited for it, and exited with 0
    const tandem = await startTandem(['--persistence', 'memory', '--auth-secret', SECRET])
    expect((await upgrade(`${tandem.url}/doc?token=${await signToken(SECRET, { sub: 'ada' })}`)).status).toBe('open')
    expect((await upgrade(`${tandem.url}/doc?token=forged`)).status).toBe(401)
    expect(tandem.child.exitCode).toBe(null)
    expect(await tandem.stop()).toBe(0)
  })
})
