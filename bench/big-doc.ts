import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { prng } from './stats.js'

/** The seed of the bench's and the tests' big documents (one cache for both). */
export const BIG_SEED = 22

/** The top-level types of a generated document. */
export const BIG_TEXT = 'text'
export const BIG_XML = 'content'

const WORDS = ('the a of and to in is that it was for on are as with his they at be this from have or by one had ' +
  'not but what all were when we there can an your which their said if do will each about how up out them then ' +
  'she many some so these would other into has more her two like him see time could no make than first been its ' +
  'who now people my made over did down only way find use may water long little very after words called just ' +
  'where most know document server client edit presence lock sync update tandem paragraph heading review draft').split(' ')

/**
 * A document of at least `bytes` encoded (Yjs update v1), built the way people write: several
 * authors (Yjs client ids) type runs of words, mostly at the end of what is there and sometimes
 * in the middle, delete a little as they go (a word, a phrase), and half of the content is a
 * rich-text-like tree: `Y.XmlElement` paragraphs and headings (with attributes) holding
 * `Y.XmlText` with bold, italic and link formatting. Seeded: the same `bytes` and `seed` give
 * the same bytes. `wordsPerRun` bounds a run's length: the default types like a person; a
 * larger one (pasted passages) makes a document of the same size with fewer structs, faster.
 */
export function generateBigDocument (bytes: number, seed: number, wordsPerRun = 60): Uint8Array {
  const random = prng(seed)
  const doc = new Y.Doc({ gc: true })
  const text = doc.getText(BIG_TEXT)
  const xml = doc.getXmlFragment(BIG_XML)
  const authors: number[] = []
  for (let i = 0; i < 24; i++) authors.push(1 + Math.floor(random() * 0x3fffffff))
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
  /** A run of typing: 1 to about `wordsPerRun` words, most runs short. */
  const run = (): string => {
    const n = 1 + Math.floor(random() * random() * wordsPerRun)
    let out = ''
    for (let i = 0; i < n; i++) out += pick(WORDS) + (random() < 0.08 ? '. ' : ' ')
    return out
  }
  // the encoded size grows about as fast as the content typed: checked against the real encoding
  // every so often, not after each edit
  let estimate = 0
  let checkAt = Math.min(bytes, 4 * 1024 * 1024)
  let paragraphs: Y.XmlText[] = []
  for (;;) {
    doc.clientID = pick(authors)
    const edits = 20 + Math.floor(random() * 80)
    for (let e = 0; e < edits; e++) {
      if (random() < 0.5) {
        // plain text: typed at the end mostly, else at a random place; some runs corrected
        const words = run()
        const at = random() < 0.8 ? text.length : Math.floor(random() * (text.length + 1))
        text.insert(at, random() < 0.05 ? words + '\n' : words)
        estimate += words.length + 8
        if (random() < 0.15 && text.length > 40) {
          const length = 1 + Math.floor(random() * 30)
          text.delete(Math.max(0, Math.min(at + Math.floor(random() * words.length), text.length - length)), length)
          estimate -= length - 6
        }
      } else {
        // rich text: a new paragraph or heading now and then, runs typed into recent ones
        if (paragraphs.length === 0 || random() < 0.12) {
          const heading = random() < 0.15
          const element = new Y.XmlElement(heading ? 'heading' : 'paragraph')
          if (heading) element.setAttribute('level', String(1 + Math.floor(random() * 3)))
          if (random() < 0.2) element.setAttribute('align', pick(['left', 'center', 'right']))
          const body = new Y.XmlText()
          element.insert(0, [body])
          xml.insert(random() < 0.9 ? xml.length : Math.floor(random() * (xml.length + 1)), [element])
          paragraphs.push(body)
          if (paragraphs.length > 64) paragraphs = paragraphs.slice(-32)
          estimate += 40
        }
        const body = random() < 0.7 ? paragraphs[paragraphs.length - 1] as Y.XmlText : pick(paragraphs)
        const words = run()
        const at = random() < 0.7 ? body.length : Math.floor(random() * (body.length + 1))
        const roll = random()
        const attributes = roll < 0.1 ? { bold: true } : roll < 0.16 ? { italic: true } : roll < 0.18 ? { link: { href: `https://example.com/${Math.floor(random() * 1000)}` } } : undefined
        body.insert(at, words, attributes)
        estimate += words.length + (attributes === undefined ? 8 : 40)
        if (random() < 0.05 && body.length > 10) {
          const from = Math.floor(random() * (body.length - 5))
          body.format(from, Math.min(body.length - from, 1 + Math.floor(random() * 20)), { bold: true })
          estimate += 40
        }
        if (random() < 0.12 && body.length > 20) {
          const length = 1 + Math.floor(random() * 15)
          body.delete(Math.floor(random() * (body.length - length)), length)
          estimate -= length - 6
        }
      }
    }
    if (estimate < checkAt) continue
    const size = Y.encodeStateAsUpdate(doc).byteLength
    if (size >= bytes) break
    // close in on the target in steps of a tenth of what is left, at least 1 MiB
    estimate = size
    checkAt = size + Math.max(1024 * 1024, (bytes - size) / 10)
    if (checkAt > bytes) checkAt = bytes
  }
  const update = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return update
}

/**
 * generateBigDocument(bytes, seed), kept in the temporary folder after the first build (a
 * 100 MB document takes minutes to type): later runs and tests read it back. Returns the file
 * and its bytes.
 */
export function bigDocumentFile (bytes: number, seed: number, wordsPerRun = 60): { file: string, update: Uint8Array } {
  const dir = join(tmpdir(), 'tandem-big-documents')
  const file = join(dir, `v1-${bytes}-${seed}${wordsPerRun === 60 ? '' : `-${wordsPerRun}`}.yjs`)
  if (existsSync(file)) return { file, update: new Uint8Array(readFileSync(file)) }
  const update = generateBigDocument(bytes, seed, wordsPerRun)
  mkdirSync(dir, { recursive: true })
  // written whole, then renamed: a run interrupted mid-write leaves no truncated cache
  const partial = `${file}.${process.pid}.partial`
  writeFileSync(partial, update)
  renameSync(partial, file)
  return { file, update }
}
