// The avatar row: one chip per user in the document, from `client.presence`.

const STATUS_LABEL = { active: 'active', idle: 'idle', away: 'away', reconnecting: 'reconnecting…' }

/**
 * Renders everyone in the document into `list` and keeps it current.
 * @param {import('tandem/client').TandemClient} client
 * @param {HTMLElement} list
 */
export function showPeople (client, list) {
  let shown = ''
  const render = () => {
    const selfId = client.presence.self?.userId
    const users = client.presence.list().sort((a, b) => a.joinedAt - b.joinedAt)
    // presence updates arrive with every bit of activity (lastActiveAt); redraw only what shows
    const key = JSON.stringify(users.map(u => [u.userId, u.name, u.color, u.status, u.connections, u.userId === selfId]))
    if (key === shown) return
    shown = key
    list.replaceChildren(...users.map(user => avatar(user, user.userId === selfId)))
  }
  client.on('presence', render)
  // our own entry is gone while offline: show the last list greyed out instead of nothing
  client.on('status', status => list.classList.toggle('stale', status !== 'connected'))
  render()
}

/** @param {import('tandem/client').PresenceEntry} user */
function avatar (user, isSelf) {
  const item = document.createElement('li')
  item.className = `person status-${user.status}`
  item.dataset.testid = 'avatar'
  item.dataset.user = user.name
  item.dataset.status = user.status
  const tabs = user.connections > 1 ? ` in ${user.connections} tabs` : ''
  item.title = `${user.name}${isSelf ? ' (you)' : ''}: ${STATUS_LABEL[user.status]}${tabs}`

  const face = document.createElement('span')
  face.className = 'face'
  face.style.background = user.color
  face.textContent = initials(user.name)
  const badge = document.createElement('span')
  badge.className = 'badge'
  face.append(badge)

  const label = document.createElement('span')
  label.className = 'who'
  const name = document.createElement('strong')
  name.textContent = isSelf ? `${user.name} (you)` : user.name
  const status = document.createElement('small')
  status.textContent = STATUS_LABEL[user.status]
  label.append(name, status)

  item.append(face, label)
  return item
}

function initials (name) {
  const parts = name.trim().split(/\s+/)
  return ((parts[0]?.[0] ?? '?') + (parts[1]?.[0] ?? '')).toUpperCase()
}
