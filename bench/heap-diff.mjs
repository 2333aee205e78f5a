// The difference between two heap snapshots (v8.writeHeapSnapshot), by constructor: count and
// self size of what the second holds more of, per unit (e.g. per connection).
//   node bench/heap-diff.mjs <before.heapsnapshot> <after.heapsnapshot> [units=2000] [rows=40]
// Objects are grouped by node type and name (a constructor, a closure's function name, 'system /
// Context', a string is grouped as (string)); closures and contexts as V8 reports them.
import { readFileSync } from 'node:fs'

const [beforeFile, afterFile, units = '2000', rows = '40'] = process.argv.slice(2)

function groups (file) {
  const snapshot = JSON.parse(readFileSync(file, 'utf8'))
  const meta = snapshot.snapshot.meta
  const fields = meta.node_fields
  const types = meta.node_types[0]
  const stride = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const { nodes, strings } = snapshot
  const out = new Map()
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + typeAt]]
    let name = strings[nodes[i + nameAt]]
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)'
    else if (type === 'number') name = '(heap number)'
    else if (type === 'hidden' || type === 'array' || type === 'code' || type === 'object shape') name = `${type}: ${name.slice(0, 40)}`
    else if (type === 'closure') name = `closure ${name || '(anonymous)'}`
    const key = `${type}\t${name}`
    const group = out.get(key) ?? { count: 0, size: 0 }
    group.count++
    group.size += nodes[i + sizeAt]
    out.set(key, group)
  }
  return out
}

const before = groups(beforeFile)
const after = groups(afterFile)
const per = Number(units)
const diff = []
for (const [key, a] of after) {
  const b = before.get(key) ?? { count: 0, size: 0 }
  diff.push({ key, count: (a.count - b.count) / per, size: (a.size - b.size) / per })
}
diff.sort((x, y) => y.size - x.size)
let total = 0
for (const d of diff) total += d.size
console.log(`total ${total.toFixed(0)} B per unit`)
for (const d of diff.slice(0, Number(rows))) console.log(`${d.size.toFixed(1).padStart(8)} B ${d.count.toFixed(2).padStart(7)} × ${d.key.replace('\t', ' ')}`)
