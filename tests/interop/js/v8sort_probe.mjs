// Sorts random arrays with yjs' (inconsistent) decoder comparator; used to validate v8sort.py.
import { createInterface } from 'node:readline'
const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const arrays = JSON.parse(line)
  const out = arrays.map((arr) => {
    const xs = arr.map(([k, t], id) => ({ k, t, id }))
    xs.sort((a, b) => a.k === b.k ? (a.t === b.t ? 0 : a.t === 2 ? 1 : -1) : a.k - b.k)
    return xs.map((x) => x.id)
  })
  process.stdout.write(JSON.stringify(out) + '\n')
})
