// The connection and save indicator: "Saved", "Saving…", "Offline, 3 changes pending".
// `unsyncedChanges` counts local updates the server has not yet stored durably.

/**
 * @param {import('tandem/client').TandemClient} client
 * @param {HTMLElement} element
 */
export function showSaveStatus (client, element) {
  const label = element.querySelector('.label')
  let synced = false
  const render = () => {
    const { state, text } = describe(client.status, client.unsyncedChanges, synced)
    element.dataset.state = state
    if (label.textContent !== text) label.textContent = text
  }
  client.on('status', render)
  client.on('synced', () => { synced = true; render() })
  client.doc.on('update', render)
  // acknowledgements change the count without an event of their own: look a few times a second
  setInterval(render, 200)
  render()
}

/** What to show for a connection status and a number of pending changes. */
export function describe (status, pending, synced) {
  const changes = `${pending} ${pending === 1 ? 'change' : 'changes'}`
  if (status === 'connected' && synced) {
    return pending === 0 ? { state: 'saved', text: 'Saved' } : { state: 'saving', text: 'Saving…' }
  }
  if (!synced) return { state: 'connecting', text: 'Connecting…' }
  return pending === 0
    ? { state: 'offline', text: 'Offline, everything saved' }
    : { state: 'offline', text: `Offline, ${changes} pending` }
}
