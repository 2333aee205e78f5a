// What the page shows when the server ends its session for good: "Signed out" when its token
// expired or was revoked (sign in again: a new token, a new session), "You were away" after the
// server's idle timeout (continue: connect again). Edits made before the end were stored first.

const SIGNED_OUT = new Set(['TANDEM_ERR_TOKEN_EXPIRED', 'TANDEM_ERR_REVOKED', 'TANDEM_ERR_UNAUTHENTICATED', 'TANDEM_ERR_FORBIDDEN', 'TANDEM_ERR_KICKED'])

/**
 * @param {import('tandem/client').TandemClient} client
 * @param {HTMLElement} element the banner, hidden until an end
 */
export function showSessionEnd (client, element) {
  const title = element.querySelector('.title')
  const detail = element.querySelector('.detail')
  const action = element.querySelector('button')
  client.on('error', err => {
    const view = describeEnd(err.code)
    if (view === null) return
    element.dataset.state = view.state
    title.textContent = view.title
    detail.textContent = view.detail
    action.textContent = view.action
    action.onclick = () => {
      element.hidden = true
      if (view.state === 'away') client.connect()
      else window.location.reload()
    }
    element.hidden = false
  })
}

/** The banner for an error code, or null for errors that do not end the session. */
export function describeEnd (code) {
  if (code === 'TANDEM_ERR_IDLE_TIMEOUT') {
    return { state: 'away', title: 'You were away', detail: 'This tab was disconnected after a while without edits. Your changes are saved.', action: 'Continue editing' }
  }
  if (SIGNED_OUT.has(code)) {
    const why = code === 'TANDEM_ERR_TOKEN_EXPIRED' ? 'Your sign-in expired.'
      : code === 'TANDEM_ERR_REVOKED' ? 'You were signed out (access revoked).'
        : 'You no longer have access to this document.'
    return { state: 'signed-out', title: 'Signed out', detail: `${why} Your changes up to now are saved.`, action: 'Sign in again' }
  }
  return null
}
