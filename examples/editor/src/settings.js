// Where to connect and who this tab is. Everything can be set in the page's query string:
//   ?doc=welcome&name=Ada&color=%23e8590c&server=ws://127.0.0.1:1234
// Without a name, the tab picks one and keeps it for its lifetime (sessionStorage), so a reload
// resumes as the same person while a second window joins as someone else.

const NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Tim']
const COLORS = ['#e8590c', '#1c7ed6', '#2f9e44', '#ae3ec9', '#f08c00', '#0c8599', '#e03131', '#5f3dc4']

/** @returns {{ server: string, document: string, api: string, user: { id: string, name: string, color: string } }} */
export function readSettings (location = window.location, storage = window.sessionStorage) {
  const query = new URLSearchParams(location.search)
  const remembered = JSON.parse(storage.getItem('tandem-example-user') ?? 'null')
  const user = {
    id: remembered?.id ?? `user-${crypto.randomUUID().slice(0, 8)}`,
    name: query.get('name') ?? remembered?.name ?? pick(NAMES),
    color: query.get('color') ?? remembered?.color ?? pick(COLORS)
  }
  storage.setItem('tandem-example-user', JSON.stringify(user))
  return {
    // the Tandem server: `npm run example:editor` starts it on port 1234 next to this page
    server: query.get('server') ?? `ws://${location.hostname || '127.0.0.1'}:1234`,
    document: query.get('doc') ?? 'welcome',
    // where the versions API is: the page's own origin by default (run.js proxies /api to Tandem)
    api: query.get('api') ?? '',
    user
  }
}

function pick (list) {
  return list[Math.floor(Math.random() * list.length)]
}
