/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests: it throws on any
 * line it does not understand, on a sample whose family has no `# TYPE`, on a family declared
 * twice, on bad names, bad label syntax and bad values, so a malformed scrape fails the test.
 */

/** One sample line. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** A metric family: its `# TYPE`, `# HELP` and samples. */
export interface Family {
  name: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  help: string
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

/** Parses a scrape into its families, by name. */
export function parsePrometheusText (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const lines = text.split('\n')
  lines.forEach((line, index) => {
    const where = `line ${index + 1}: ${line}`
    if (line === '') return
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (match === null) return // a plain comment
      const [, kind, name, rest] = match as unknown as [string, string, string, string]
      if (!NAME.test(name)) throw new Error(`bad metric name, ${where}`)
      const family = families.get(name) ?? { name, type: 'untyped' as Family['type'], help: '', samples: [] }
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`bad type, ${where}`)
        if (families.has(name) && family.samples.length > 0) throw new Error(`TYPE after samples, ${where}`)
        family.type = rest as Family['type']
      } else {
        family.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\')
      }
      families.set(name, family)
      return
    }
    const sample = parseSample(line, where)
    const family = familyOf(sample.name, families)
    if (family === undefined) throw new Error(`sample without a # TYPE, ${where}`)
    family.samples.push(sample)
  })
  return families
}

function familyOf (name: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(name)
  if (exact !== undefined) return exact
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const family = families.get(name.slice(0, -suffix.length))
    if (family !== undefined && (family.type === 'histogram' || family.type === 'summary')) return family
  }
  return undefined
}

function parseSample (line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
  if (nameMatch === null) throw new Error(`bad sample, ${where}`)
  const name = nameMatch[0]
  let i = name.length
  const labels: Record<string, string> = {}
  if (line[i] === '{') {
    i++
    while (line[i] !== '}') {
      const labelMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(i))
      if (labelMatch === null || !LABEL_NAME.test(labelMatch[1] as string)) throw new Error(`bad label, ${where}`)
      i += labelMatch[0].length
      let value = ''
      for (;;) {
        const c = line[i]
        if (c === undefined) throw new Error(`unterminated label value, ${where}`)
        if (c === '"') break
        if (c === '\\') {
          const next = line[i + 1]
          if (next === 'n') value += '\n'
          else if (next === '\\' || next === '"') value += next
          else throw new Error(`bad escape, ${where}`)
          i += 2
        } else {
          value += c
          i++
        }
      }
      i++ // closing quote
      const key = labelMatch[1] as string
      if (key in labels) throw new Error(`label ${key} twice, ${where}`)
      labels[key] = value
      if (line[i] === ',') i++
      else if (line[i] !== '}') throw new Error(`bad label list, ${where}`)
    }
    i++
  }
  const rest = line.slice(i)
  const valueMatch = /^ (\S+)( -?\d+)?$/.exec(rest)
  if (valueMatch === null) throw new Error(`bad value, ${where}`)
  const raw = valueMatch[1] as string
  // as Prometheus's own parser (Go ParseFloat): Inf and NaN in any case (prom-client writes `Nan`)
  const lower = raw.toLowerCase()
  const value = lower === '+inf' || lower === 'inf' ? Infinity : lower === '-inf' ? -Infinity : lower === 'nan' ? NaN : Number(raw)
  if (Number.isNaN(value) && lower !== 'nan') throw new Error(`bad value, ${where}`)
  return { name, labels, value }
}

/** The value of the sample `name` whose labels include `labels` (0 when absent). */
export function sampleValue (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = familyOf(name, families)
  const sample = family?.samples.find(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return sample?.value ?? 0
}

/** Every label value in a scrape. */
export function labelValues (families: Map<string, Family>): string[] {
  const values: string[] = []
  for (const family of families.values()) for (const sample of family.samples) values.push(...Object.values(sample.labels))
  return values
}
