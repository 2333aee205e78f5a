// examples/document-api runs as a user runs it, as a child process against a real server, next to
// a stock y-websocket client that sees the line it appends.
import { expect, test, onTestFinished } from 'vitest'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { docName, startServer, stockClient, synced, waitFor } from '../support/helpers.js'

function runExample (args: string[]): { output: () => string, exited: Promise<number | null> } {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../../examples/document-api/export-append.js', import.meta.url)), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  child.stderr.on('data', chunk => { output += chunk })
  onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { output: () => output, exited: once(child, 'exit').then(([code]) => code as number | null) }
}

test('examples/document-api exports the document as JSON and appends a line every client sees', async () => {
  const server = await startServer({ adminToken: 'example-token' })
  const name = docName('api-example')
  const client = stockClient(server.url, name)
  await synced(client.provider)
  client.doc.getText('block:intro').insert(0, 'Hello')
  client.doc.getMap('meta').set('title', 'Example')
  await waitFor(() => server.documents.get(name)?.hasPending === false, 5_000, 'stored')
  const run = runExample([name, '--server', server.url, '--token', 'example-token', '--append', 'from the API'])
  expect(await run.exited, run.output()).toBe(0)
  expect(run.output()).toContain('"block:intro": "Hello"')
  expect(run.output()).toContain('"title": "Example"')
  expect(run.output()).toContain('block:intro now: "Hello\\nfrom the API"')
  await waitFor(() => client.doc.getText('block:intro').toString() === 'Hello\nfrom the API', 5_000, 'the client sees the line')
})

test('examples/document-api fails with the server\'s one-line error without the admin token', async () => {
  const server = await startServer({ adminToken: 'example-token' })
  const run = runExample([docName(), '--server', server.url])
  expect(await run.exited).not.toBe(0)
  expect(run.output()).toMatch(/401 Unauthorized: .*admin token required/)
})
