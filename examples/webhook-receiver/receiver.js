// A webhook receiver for Tandem: verifies each event's Tandem-Signature, refuses stale or forged
// ones, skips events it already handled (delivery is at least once: dedupe by id), and prints
// the rest.
//
//   TANDEM_WEBHOOK_SECRET=s3cret node examples/webhook-receiver/receiver.js [--port 4000]
//   tandem --webhook-url http://127.0.0.1:4000/tandem --webhook-secret s3cret
import { createServer } from 'node:http'
import { createHmac, timingSafeEqual } from 'node:crypto'

const args = process.argv.slice(2)
const at = args.indexOf('--port')
const port = Number(at === -1 ? process.env.PORT ?? 4000 : args[at + 1])
const secret = process.env.TANDEM_WEBHOOK_SECRET
if (secret === undefined || secret === '') {
  console.error('receiver: set TANDEM_WEBHOOK_SECRET to the secret given to tandem --webhook-secret')
  process.exit(1)
}
/** Signatures older than this are refused: a captured request cannot be replayed later. */
const TOLERANCE_S = 5 * 60
/** Ids of events handled: a real receiver keeps these in its database, with the work they caused. */
const seen = new Set()

/** True when `header` signs `body` with the secret, at most TOLERANCE_S ago. */
function verified (header, body) {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '')
  if (match === null) return false
  const [, t, v1] = match
  if (Math.abs(Date.now() / 1000 - Number(t)) > TOLERANCE_S) return false
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest()
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'))
}

const server = createServer((req, res) => {
  if (req.method !== 'POST') return res.writeHead(405).end()
  const chunks = []
  req.on('data', chunk => chunks.push(chunk))
  req.on('end', () => {
    // the signature covers the raw bytes: verify before parsing
    const body = Buffer.concat(chunks).toString('utf8')
    if (!verified(req.headers['tandem-signature'], body)) {
      console.log('refused: bad signature')
      return res.writeHead(401).end()
    }
    const event = JSON.parse(body)
    if (seen.has(event.id)) return res.writeHead(200).end() // a retry of one handled already
    seen.add(event.id)
    console.log(`${new Date(event.createdAt).toISOString()} ${event.type} ${event.document} ${JSON.stringify(event.data)}`)
    // answer quickly: Tandem waits for the answer before sending the document's next event
    res.writeHead(204).end()
  })
})
server.listen(port, '127.0.0.1', () => console.log(`receiver: listening on http://127.0.0.1:${server.address().port}/`))
