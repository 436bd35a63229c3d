// Oracle for tests/interop/test_yupdate_js.py: one process answers many requests.
// Protocol: one JSON object per stdin line, one JSON reply per stdout line. Bytes are hex.
//   {op:'trace', seed, steps}       -> random concurrent edit trace (see genTrace)
//   {op:'merge', updates}           -> Y.mergeUpdates
//   {op:'diff', update, sv}         -> Y.diffUpdate
//   {op:'sv', update}               -> Y.encodeStateVectorFromUpdate
//   {op:'docs', updates, candidate, base?, diff?} -> compare documents built in JS
//   {op:'bench', n, clients, path}  -> write n single-character edit updates to path
//   {op:'sort', arrays}             -> sort [key, type] pairs with yjs' decoder comparator
import * as Y from 'yjs'
import { createInterface } from 'node:readline'
import { writeFileSync } from 'node:fs'

const hex = (u) => Buffer.from(u).toString('hex')
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'))

const mulberry32 = (seed) => () => {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const CHARS = ['a', 'b', 'x', ' ', 'é', 'ß', '中', '😀', '👍🏽', '🇩🇪', '\n']
const KEYS = ['setup', 'zeta', 'alpha', 'mid', '10', '2', 'b', 'members']

const genTrace = (seed, steps) => {
  const rnd = mulberry32(seed)
  const int = (n) => Math.floor(rnd() * n)
  const pick = (xs) => xs[int(xs.length)]
  const str = (max) => { let s = ''; const n = 1 + int(max); for (let i = 0; i < n; i++) s += pick(CHARS); return s }
  const json = (depth) => {
    const r = int(depth > 2 ? 5 : 8)
    if (r === 0) return int(1000) - 500
    if (r === 1) return rnd() * 1e6
    if (r === 2) return str(4)
    if (r === 3) return pick([true, false, null])
    if (r === 4) return 2 ** 40 + int(1000)
    if (r === 5) { const a = []; for (let i = int(4); i > 0; i--) a.push(json(depth + 1)); return a }
    const o = {}
    const keys = ['zz', 'name', 'a', 'meta', 'id', 'x1', 'Ω', 'key with space', '7']
    for (let i = 1 + int(5); i > 0; i--) o[pick(keys) + (int(3) ? '' : int(9))] = json(depth + 1)
    return o
  }
  const nClients = 2 + int(3)
  const docs = []
  const log = []
  const written = {}
  for (let i = 0; i < nClients; i++) {
    const doc = new Y.Doc()
    doc.clientID = 1 + int(2 ** 32 - 2)
    doc.on('update', (u, origin) => { if (origin !== 'remote') log.push(hex(u)) })
    docs.push(doc)
  }
  const nestedOf = (doc) => {
    const out = []
    doc.getMap('m').forEach((v) => { if (v instanceof Y.AbstractType) out.push(v) })
    doc.getArray('a').forEach((v) => { if (v instanceof Y.AbstractType) out.push(v) })
    return out
  }
  // Positions never fall inside a surrogate pair: yjs itself would write U+FFFD there, and the
  // document comparisons below would then fail for yjs as well. (Byte comparisons use arbitrary
  // state vectors, which do cut pairs.)
  const safe = (t, p) => {
    // toString() leaves embeds out; the delta counts each as one position, like t.length
    const s = t.toDelta().map((d) => typeof d.insert === 'string' ? d.insert : '\u0000').join('')
    const c = s.charCodeAt(p - 1)
    return p > 0 && p < s.length && c >= 0xd800 && c <= 0xdbff ? p + 1 : p
  }
  const editText = (t) => {
    if (t.length > 0 && rnd() < 0.3) {
      const p = safe(t, int(t.length))
      const e = safe(t, Math.min(t.length, p + 1 + int(5)))
      if (e > p) t.delete(p, e - p)
    } else if (t.length > 0 && rnd() < 0.1) {
      const p = safe(t, int(t.length))
      const e = safe(t, Math.min(t.length, p + 1 + int(3)))
      if (e > p) t.format(p, e - p, { bold: rnd() < 0.5 ? true : null })
    } else if (rnd() < 0.05) {
      t.insertEmbed(safe(t, int(t.length + 1)), { image: str(3), w: int(100) })
    } else {
      t.insert(safe(t, int(t.length + 1)), str(6))
    }
  }
  const editArray = (a) => {
    if (a.length > 0 && rnd() < 0.3) { const p = int(a.length); a.delete(p, 1 + int(Math.min(3, a.length - p))) } else {
      const vals = []; for (let i = 1 + int(3); i > 0; i--) vals.push(json(1))
      a.insert(int(a.length + 1), vals)
    }
  }
  for (let step = 0; step < steps; step++) {
    const doc = pick(docs)
    const r = int(20)
    if (r < 6) editText(doc.getText('t'))
    else if (r < 10) {
      const key = pick(KEYS); const v = json(0)
      doc.getMap('m').set(key, v)
      ;(written[key] = written[key] || []).push(JSON.stringify(v))
    } else if (r < 12) {
      const key = pick(KEYS); const kind = int(4)
      const v = kind === 0 ? new Y.Map() : kind === 1 ? new Y.Array() : kind === 2 ? new Y.Text() : new Uint8Array([int(256), 1, 2])
      doc.getMap('m').set(key, v)
    } else if (r < 13) doc.getMap('m').delete(pick(KEYS))
    else if (r < 15) editArray(doc.getArray('a'))
    else if (r < 17) {
      const ns = nestedOf(doc)
      if (ns.length) {
        const n = pick(ns)
        if (n instanceof Y.Text) editText(n)
        else if (n instanceof Y.Array) editArray(n)
        else if (n instanceof Y.Map) n.set(pick(['q', 'b', 'a']), json(1))
      }
    } else if (r < 19) {
      const other = pick(docs)
      if (other !== doc) Y.applyUpdate(other, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(other)), 'remote')
    } else {
      // what a reconnecting client or a snapshot writer would add to a server log: overlaps
      const other = pick(docs)
      log.push(hex(rnd() < 0.5 ? Y.encodeStateAsUpdate(doc) : Y.encodeStateAsUpdate(doc, Y.encodeStateVector(other))))
    }
  }
  // Partial replays give realistic state vectors. Log prefixes are causally closed; random
  // subsets usually leave pending structs, where yjs' own diffUpdate does not converge either.
  const svs = []
  for (let i = 0; i < 4; i++) {
    const idx = []
    if (i < 2) {
      for (let j = int(log.length + 1) - 1; j >= 0; j--) idx.unshift(j)
    } else {
      for (let j = int(log.length + 1); j > 0; j--) idx.push(int(log.length))
    }
    const d = new Y.Doc()
    for (const j of idx) Y.applyUpdate(d, unhex(log[j]))
    const pending = d.store.pendingStructs !== null || d.store.pendingDs !== null
    svs.push({ sv: hex(Y.encodeStateVector(d)), base: idx, pending })
  }
  const clients = docs.map((d) => d.clientID)
  return { updates: log, svs, clients, written }
}

const docOf = (updates) => {
  const d = new Y.Doc()
  for (const u of updates) Y.applyUpdate(d, unhex(u))
  return d
}

// Shared types are compared with their entries sorted: a Y.Map's toJSON() key order is the
// order in which the receiving doc integrated the entries. Plain JSON values keep their exact
// JSON.stringify text, key order included: that is what Edrys signs.
const canon = (v) => {
  if (v instanceof Y.Map) {
    return [...v.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, canon(x)])
  }
  if (v instanceof Y.Array) return v.toArray().map(canon)
  if (v instanceof Y.Text) return v.toDelta()
  if (v instanceof Uint8Array) return hex(v)
  return JSON.stringify(v)
}

const snapshot = (d) => {
  const m = {}
  d.getMap('m').forEach((v, k) => {
    m[k] = v instanceof Y.AbstractType ? { kind: 'y', s: JSON.stringify(canon(v)) } : v instanceof Uint8Array ? { kind: 'bin', s: hex(v) } : { kind: 'json', s: JSON.stringify(v) }
  })
  return {
    t: d.getText('t').toDelta(),
    a: canon(d.getArray('a')),
    m,
    sv: hex(Y.encodeStateVector(d))
  }
}

const handle = (req) => {
  switch (req.op) {
    case 'trace': return genTrace(req.seed, req.steps)
    case 'merge': return { out: hex(Y.mergeUpdates(req.updates.map(unhex))) }
    case 'diff': return { out: hex(Y.diffUpdate(unhex(req.update), unhex(req.sv))) }
    case 'sv': return { out: hex(Y.encodeStateVectorFromUpdate(unhex(req.update))) }
    case 'docs': {
      const want = snapshot(docOf(req.updates))
      const got = snapshot(docOf(req.base ? [...req.base, req.candidate] : [req.candidate]))
      return { want, got }
    }
    case 'bench': {
      const rnd = mulberry32(req.seed || 1)
      const docs = []
      const log = []
      for (let i = 0; i < req.clients; i++) {
        const d = new Y.Doc(); d.clientID = Math.floor(rnd() * 2 ** 32)
        d.on('update', (u, origin) => { if (origin !== 'remote') log.push(u) })
        docs.push(d)
      }
      while (log.length < req.n) {
        const d = docs[Math.floor(rnd() * docs.length)]
        const t = d.getText('t')
        if (rnd() < 0.2 && t.length > 0) t.delete(Math.floor(rnd() * t.length), 1)
        else t.insert(Math.floor(rnd() * (t.length + 1)), CHARS[Math.floor(rnd() * 4)])
        if (rnd() < 0.02) {
          const o = docs[Math.floor(rnd() * docs.length)]
          if (o !== d) Y.applyUpdate(o, Y.encodeStateAsUpdate(d, Y.encodeStateVector(o)), 'remote')
        }
      }
      const parts = []
      for (const u of log) { const h = Buffer.alloc(4); h.writeUInt32BE(u.length); parts.push(h, Buffer.from(u)) }
      writeFileSync(req.path, Buffer.concat(parts))
      const t0 = performance.now()
      const merged = req.jsMerge ? Y.mergeUpdates(log) : null
      const jsMergeMs = performance.now() - t0
      return { count: log.length, bytes: parts.reduce((a, b) => a + b.length, 0) - 4 * log.length, jsMergeMs, merged: merged && hex(merged) }
    }
    case 'sort': return {
      out: req.arrays.map((arr) => {
        const xs = arr.map(([k, t], id) => ({ k, t, id }))
        // the comparator of yjs mergeUpdatesV2: -1 both ways for equal keys of different type
        xs.sort((a, b) => a.k === b.k ? (a.t === b.t ? 0 : a.t === 2 ? 1 : -1) : a.k - b.k)
        return xs.map((x) => x.id)
      })
    }
    default: throw new Error('unknown op ' + req.op)
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  let reply
  try { reply = { ok: true, ...handle(JSON.parse(line)) } } catch (e) { reply = { ok: false, error: String(e && e.stack || e) } }
  process.stdout.write(JSON.stringify(reply) + '\n')
})
