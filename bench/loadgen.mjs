#!/usr/bin/env node
// Load generator for bench/run.py: speaks y-websocket (real Yjs updates) and y-webrtc signaling
// to one server on 127.0.0.1 and reports what every receiver got.
//
// Usage: node loadgen.mjs '<json config>'
// Talks to run.py in JSON lines: it prints {"event":"ready"} after setup, waits for "go" on
// stdin, runs the measured phase, prints {"event":"done", ...} and exits after "quit" (or at
// its own deadline). Every phase has a deadline; nothing here waits forever.

import { performance } from 'node:perf_hooks'
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { createInterface } from 'node:readline'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

const HERE = dirname(fileURLToPath(import.meta.url))
const cfg = JSON.parse(process.argv[2])
const HOST = '127.0.0.1' // traffic to loopback only
const BASE = `ws://${HOST}:${cfg.port}`
const HARD_DEADLINE_MS = (cfg.hardDeadlineSeconds ?? 300) * 1000

const hardTimer = setTimeout(() => {
  emit({ event: 'error', message: 'hard deadline reached' })
  process.exit(3)
}, HARD_DEADLINE_MS)

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// -- stdin commands from run.py --------------------------------------------------------------

const commands = []
let commandWaiter = null
createInterface({ input: process.stdin }).on('line', line => {
  commands.push(line.trim())
  if (commandWaiter) { const w = commandWaiter; commandWaiter = null; w() }
})

async function waitCommand (name, timeoutMs) {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    const i = commands.indexOf(name)
    if (i >= 0) { commands.splice(i, 1); return }
    await new Promise(resolve => {
      commandWaiter = resolve
      setTimeout(resolve, 200)
    })
  }
  throw new Error(`no '${name}' command within ${timeoutMs} ms`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitUntil (cond, timeoutMs, what) {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timeout waiting for ${what}`)
    await sleep(5)
  }
}

// -- lib0 helpers for the hot path (no allocation per field) -----------------------------------

function readVarUint (buf, st) {
  let num = 0
  let mult = 1
  for (let i = 0; i < 8; i++) {
    const b = buf[st.pos++]
    num += (b & 0x7f) * mult
    if (b < 0x80) return num
    mult *= 128
  }
  throw new Error('varUint too long')
}

function frameSyncUpdate (update) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint(e, 2)
  encoding.writeVarUint8Array(e, update)
  return Buffer.from(encoding.toUint8Array(e))
}

const SYNC_STEP1_EMPTY = Buffer.from([0, 0, 1, 0])
const SYNC_STEP2_EMPTY = Buffer.from([0, 1, 2, 0, 0])

function awarenessFrame (clientID, clock, state) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientID)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, JSON.stringify(state))
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1)
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
  return Buffer.from(encoding.toUint8Array(e))
}

// Deterministic PRNG (mulberry32) so every server gets the same workload.
function prng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `count` keystroke updates (one character appended to Y.Text "t") by a fixed client id. */
function typingUpdates (clientID, count) {
  const doc = new Y.Doc()
  doc.clientID = clientID
  const text = doc.getText('t')
  const frames = new Array(count)
  let i = 0
  doc.on('update', u => { frames[i] = frameSyncUpdate(u) })
  for (; i < count; i++) text.insert(text.length, String.fromCharCode(97 + (i % 26)))
  return frames
}

// -- connections -------------------------------------------------------------------------------

class Client {
  constructor (url, onMessage) {
    this.url = url
    this.onMessage = onMessage
    this.ws = null
    this.open = false
    this.greeted = false
    this.closedEarly = false
  }

  connect () {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, { handshakeTimeout: 10000 })
      ws.binaryType = 'nodebuffer'
      this.ws = ws
      ws.on('open', () => { this.open = true; resolve() })
      ws.on('message', (data, isBinary) => this.onMessage(this, data, isBinary))
      ws.on('error', err => { if (!this.open) reject(err) })
      ws.on('close', () => { if (this.open) this.closedEarly = !this.quitting; this.open = false })
    })
  }

  send (data) { this.ws.send(data) }

  close () { this.quitting = true; try { this.ws.terminate() } catch {} }
}

/** Open `clients` with at most `parallel` handshakes in flight; returns elapsed ms. */
async function connectAll (clients, parallel, timeoutMs) {
  const t0 = performance.now()
  let next = 0
  let failed = 0
  async function worker () {
    while (next < clients.length) {
      const c = clients[next++]
      try { await c.connect() } catch { failed++ }
    }
  }
  const workers = []
  for (let i = 0; i < Math.min(parallel, clients.length); i++) workers.push(worker())
  await Promise.race([Promise.all(workers), sleep(timeoutMs).then(() => { throw new Error('connect timeout') })])
  if (failed) throw new Error(`${failed} connections failed`)
  return performance.now() - t0
}

// -- per-receiver delivery accounting ----------------------------------------------------------

class Track {
  constructor (capacity) {
    this.seen = new Uint8Array(capacity)
    this.unique = 0
    this.dup = 0
    this.reorder = 0
    this.maxSeen = -1
    this.unknown = 0
  }

  add (seq) {
    if (seq < 0 || seq >= this.seen.length) { this.unknown++; return false }
    if (this.seen[seq]) { this.dup++; return false }
    this.seen[seq] = 1
    this.unique++
    if (seq < this.maxSeen) this.reorder++
    else this.maxSeen = seq
    return true
  }
}

function sumTracks (tracks, expectedPer) {
  let unique = 0; let dup = 0; let reorder = 0; let unknown = 0; let lost = 0
  tracks.forEach((t, i) => {
    unique += t.unique; dup += t.dup; reorder += t.reorder; unknown += t.unknown
    lost += Math.max(0, expectedPer[i] - t.unique)
  })
  return { delivered: unique, duplicated: dup, reordered: reorder, unknown, lost }
}

function cpuSeconds () {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

function percentile (sorted, p) {
  if (!sorted.length) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

// -- y-websocket rooms -------------------------------------------------------------------------

/**
 * Rooms of y-websocket clients; client 0 of each room writes. Receivers decode the first struct
 * id (client, clock) of every sync update: with one character per update, clock = sequence.
 */
// cfg.ports (bench/cluster_bench.py): the writer on the first node, receivers on the others.
function clientBase (c) {
  const ports = cfg.ports
  if (!ports || ports.length < 2) return BASE
  return `ws://${HOST}:${c === 0 ? ports[0] : ports[1 + ((c - 1) % (ports.length - 1))]}`
}

async function setupRooms ({ rooms, clientsPerRoom, capacity, onDelivery }) {
  const all = []
  const roomState = []
  for (let r = 0; r < rooms; r++) {
    const writerID = 100000 + r
    const state = { r, writerID, clients: [], tracks: [] }
    roomState.push(state)
    for (let c = 0; c < clientsPerRoom; c++) {
      const track = c === 0 ? null : new Track(capacity)
      const client = new Client(`${clientBase(c)}/bench-${cfg.tag ?? 'r'}-${r}`, (self, data) => {
        // y-websocket message: [0, syncType, update...] or [1, awareness]
        if (data[0] === 0) {
          const st = { pos: 1 }
          const syncType = readVarUint(data, st)
          if (syncType === 0) { self.send(SYNC_STEP2_EMPTY); self.greeted = true; return }
          if (syncType === 1) { self.synced = true; return }
          readVarUint(data, st) // payload length
          const nClients = readVarUint(data, st)
          if (nClients < 1) return
          readVarUint(data, st) // struct count
          const client = readVarUint(data, st)
          const clock = readVarUint(data, st)
          if (client !== writerID) return
          if (track === null) return // the reference echoes to the writer; not a delivery
          if (track.add(clock)) onDelivery(state, clock, c)
        }
      })
      client.room = state
      state.clients.push(client)
      if (track) state.tracks.push(track)
      all.push(client)
    }
  }
  const connectMs = await connectAll(all, 100, 60000)
  for (const c of all) c.send(SYNC_STEP1_EMPTY)
  await waitUntil(() => all.every(c => c.greeted), 30000, 'sync step 1 from the server')
  return { all, roomState, connectMs }
}

function closeAll (clients) {
  for (const c of clients) c.close()
}

async function scenarioFanout () {
  const { rooms, clientsPerRoom, window: win, seconds, drainSeconds = 10 } = cfg
  const capacity = cfg.maxUpdatesPerWriter ?? 200000
  const receivers = clientsPerRoom - 1
  let frames = []
  const remaining = []
  const completed = []
  const sent = []
  let stopAt = Infinity
  let pumping = null

  const onDelivery = (state, seq) => {
    const r = state.r
    const left = --remaining[r][seq]
    if (left === 0 && seq === completed[r]) {
      let k = completed[r] + 1
      while (k < sent[r] && remaining[r][k] === 0) k++
      completed[r] = k
      pump(r)
    }
  }
  const { all, roomState, connectMs } = await setupRooms({ rooms, clientsPerRoom, capacity, onDelivery })
  frames = roomState.map(s => typingUpdates(s.writerID, capacity))
  for (let r = 0; r < rooms; r++) {
    remaining.push(new Uint16Array(capacity).fill(receivers))
    completed.push(0)
    sent.push(0)
  }
  function pump (r) {
    if (performance.now() >= stopAt) return
    const writer = roomState[r].clients[0]
    while (sent[r] < capacity && sent[r] < completed[r] + win) {
      writer.send(frames[r][sent[r]++])
    }
  }
  emit({ event: 'ready', connections: all.length, connect_ms: connectMs })
  await waitCommand('go', 120000)
  const cpu0 = cpuSeconds()
  const t0 = performance.now()
  stopAt = t0 + seconds * 1000
  for (let r = 0; r < rooms; r++) pump(r)
  // Some rounds end while every room waits: poll so a room never stalls silently.
  pumping = setInterval(() => { for (let r = 0; r < rooms; r++) if (completed[r] === sent[r]) pump(r) }, 50)
  await sleep(seconds * 1000)
  const sentTotal = sent.reduce((a, b) => a + b, 0)
  const expected = sentTotal * receivers
  const delivered = () => roomState.reduce((a, s) => a + s.tracks.reduce((b, t) => b + t.unique, 0), 0)
  const tSend = performance.now()
  try { await waitUntil(() => delivered() >= expected, drainSeconds * 1000, 'drain') } catch {}
  const t1 = performance.now()
  clearInterval(pumping)
  const tracks = []; const expectedPer = []
  roomState.forEach((s, r) => s.tracks.forEach(t => { tracks.push(t); expectedPer.push(sent[r]) }))
  const counts = sumTracks(tracks, expectedPer)
  const elapsed = (t1 - t0) / 1000
  emit({
    event: 'done',
    sent: sentTotal,
    expected,
    ...counts,
    elapsed_s: elapsed,
    drain_s: (t1 - tSend) / 1000,
    deliveries_per_s: counts.delivered / elapsed,
    updates_per_s: sentTotal / elapsed,
    loadgen_cpu_s: cpuSeconds() - cpu0,
    capped: sent.some(n => n >= capacity),
    dropped_connections: all.filter(c => c.closedEarly).length
  })
  await waitCommand('quit', 60000).catch(() => {})
  closeAll(all)
}

async function scenarioLatency () {
  const { rooms, clientsPerRoom, rate, seconds, drainSeconds = 5 } = cfg
  const perWriter = Math.ceil(rate * seconds)
  const receivers = clientsPerRoom - 1
  const sendAt = [] // when the update was due (open loop schedule)
  const sentAt = [] // when the load generator actually wrote it
  const samples = new Float64Array(rooms * perWriter * receivers)
  const fromDue = new Float64Array(rooms * perWriter * receivers)
  let nSamples = 0
  // cfg.traceFile: every send and receipt on CLOCK_MONOTONIC (µs), which Python's
  // time.monotonic() shares, for bench/latency_path.py's timeline.
  const trace = cfg.traceFile ? { sent: [], recv: [] } : null
  const mono = () => Number(process.hrtime.bigint() / 1000n)
  const onDelivery = (state, seq, c) => {
    const t = sentAt[state.r][seq]
    if (t > 0) {
      const now = performance.now()
      fromDue[nSamples] = now - sendAt[state.r][seq]
      samples[nSamples++] = now - t
      if (trace) trace.recv.push([state.r, seq, c, mono()])
    }
  }
  const { all, roomState, connectMs } = await setupRooms({ rooms, clientsPerRoom, capacity: perWriter, onDelivery })
  const frames = roomState.map(s => typingUpdates(s.writerID, perWriter))
  for (let r = 0; r < rooms; r++) {
    sendAt.push(new Float64Array(perWriter))
    sentAt.push(new Float64Array(perWriter))
  }
  emit({ event: 'ready', connections: all.length, connect_ms: connectMs })
  await waitCommand('go', 120000)
  const cpu0 = cpuSeconds()
  const t0 = performance.now() + 20
  // Open loop: update k of room r is due at t0 + (k + r / rooms) / rate, whatever the replies.
  const intervalMs = 1000 / rate
  const due = (r, k) => t0 + (k + r / rooms) * intervalMs
  const next = new Array(rooms).fill(0)
  let lateSends = 0
  await new Promise(resolve => {
    const tick = () => {
      const now = performance.now()
      let soonest = Infinity
      for (let r = 0; r < rooms; r++) {
        while (next[r] < perWriter && due(r, next[r]) <= now) {
          const k = next[r]++
          sendAt[r][k] = due(r, k)
          if (now - due(r, k) > 5) lateSends++
          sentAt[r][k] = performance.now()
          if (trace) trace.sent.push([r, k, mono()])
          roomState[r].clients[0].send(frames[r][k])
        }
        if (next[r] < perWriter) soonest = Math.min(soonest, due(r, next[r]))
      }
      if (soonest === Infinity) resolve()
      else setTimeout(tick, Math.max(0, soonest - performance.now()))
    }
    setTimeout(tick, 20)
  })
  const expected = rooms * perWriter * receivers
  try { await waitUntil(() => nSamples >= expected, drainSeconds * 1000, 'drain') } catch {}
  const t1 = performance.now()
  const tracks = []; const expectedPer = []
  roomState.forEach(s => s.tracks.forEach(t => { tracks.push(t); expectedPer.push(perWriter) }))
  const counts = sumTracks(tracks, expectedPer)
  const sorted = Array.from(samples.subarray(0, nSamples)).sort((a, b) => a - b)
  const sortedDue = Array.from(fromDue.subarray(0, nSamples)).sort((a, b) => a - b)
  if (trace) writeFileSync(cfg.traceFile, JSON.stringify(trace))
  emit({
    event: 'done',
    sent: rooms * perWriter,
    expected,
    ...counts,
    elapsed_s: (t1 - t0) / 1000,
    p50_ms: percentile(sorted, 50),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    late_sends: lateSends,
    // From the schedule instead of the actual write: includes the load generator's own delays.
    p50_from_due_ms: percentile(sortedDue, 50),
    p99_from_due_ms: percentile(sortedDue, 99),
    loadgen_cpu_s: cpuSeconds() - cpu0,
    dropped_connections: all.filter(c => c.closedEarly).length
  })
  await waitCommand('quit', 60000).catch(() => {})
  closeAll(all)
}

// -- idle connections with awareness -----------------------------------------------------------

function parseAwarenessIDs (data, into) {
  const st = { pos: 1 }
  readVarUint(data, st) // payload length
  const n = readVarUint(data, st)
  for (let i = 0; i < n && i < 10000; i++) {
    const id = readVarUint(data, st)
    readVarUint(data, st) // clock
    const len = readVarUint(data, st)
    const nullState = len === 4 && data[st.pos] === 0x6e // "null": a removal
    st.pos += len
    if (!nullState) into.add(id)
  }
}

async function scenarioIdle () {
  const { connections, perRoom, parallel = 50 } = cfg
  const rooms = Math.ceil(connections / perRoom)
  const clients = []
  for (let i = 0; i < connections; i++) {
    const r = i % rooms
    const client = new Client(`${BASE}/idle-${r}`, (self, data) => {
      if (data[0] === 0) {
        if (data[1] === 0) { self.send(SYNC_STEP2_EMPTY); self.greeted = true }
      } else if (data[0] === 1) {
        parseAwarenessIDs(data, self.peersSeen)
      }
    })
    client.peersSeen = new Set()
    client.clientID = 1000000 + i
    client.roomSize = Math.min(perRoom, connections - r) // every room gets perRoom here
    clients.push(client)
  }
  emit({ event: 'ready', connections: 0 })
  await waitCommand('go', 120000)
  const cpu0 = cpuSeconds()
  // Each client opens, sends sync step 1 and its awareness state, like a y-websocket provider.
  const t0 = performance.now()
  let next = 0
  let failed = 0
  async function worker () {
    while (next < clients.length) {
      const c = clients[next++]
      try {
        await c.connect()
        c.send(SYNC_STEP1_EMPTY)
        c.send(awarenessFrame(c.clientID, 1, {
          user: { name: `pupil-${c.clientID}`, color: '#30bced', colorLight: '#30bced33' },
          cursor: null
        }))
      } catch { failed++ }
    }
  }
  const workers = []
  for (let i = 0; i < parallel; i++) workers.push(worker())
  await Promise.race([Promise.all(workers), sleep(120000)])
  const connectMs = performance.now() - t0
  let settled = true
  try {
    await waitUntil(() => clients.every(c => c.greeted && c.peersSeen.size >= perRoom), 60000, 'awareness')
  } catch { settled = false }
  const settleMs = performance.now() - t0
  emit({
    event: 'done',
    connections: clients.filter(c => c.open).length,
    failed,
    settled,
    connect_ms: connectMs,
    settle_ms: settleMs,
    connects_per_s: (connections - failed) / (connectMs / 1000),
    awareness_incomplete: clients.filter(c => c.peersSeen.size < perRoom).length,
    loadgen_cpu_s: cpuSeconds() - cpu0,
    dropped_connections: clients.filter(c => c.closedEarly).length
  })
  await waitCommand('quit', 120000).catch(() => {})
  closeAll(clients)
}

// -- join: full sync of a large room -----------------------------------------------------------

/** 100,000 small edits (insert 1-3 chars at a random place, or delete 1-2), cached on disk. */
function joinUpdates (count) {
  const dir = join(HERE, '.cache')
  const file = join(dir, `join-${count}.bin`)
  if (existsSync(file)) {
    const raw = readFileSync(file)
    const out = []
    let pos = 0
    while (pos < raw.length) {
      const len = raw.readUInt32LE(pos)
      out.push(raw.subarray(pos + 4, pos + 4 + len))
      pos += 4 + len
    }
    if (out.length === count) return out
  }
  const rnd = prng(7)
  // One document typed by four clients in turn (switching clientID is what Yjs does itself).
  const doc = new Y.Doc()
  const updates = []
  doc.on('update', u => updates.push(u))
  const t = doc.getText('t')
  const alphabet = 'abcdefghijklmnopqrstuvwxyz     .,'
  for (let i = 0; i < count; i++) {
    doc.clientID = 7000 + Math.floor(rnd() * 4)
    const len = t.length
    if (len > 10 && rnd() < 0.15) {
      const at = Math.floor(rnd() * (len - 2))
      t.delete(at, 1 + Math.floor(rnd() * 2))
    } else {
      // Mostly near the end of the text, sometimes anywhere: people type where they are.
      const at = rnd() < 0.8 ? Math.max(0, len - Math.floor(rnd() * 40)) : Math.floor(rnd() * (len + 1))
      // Keystrokes (1-3 characters) and pasted or autocompleted words (8-40 characters).
      let s = ''
      const n = rnd() < 0.5 ? 1 + Math.floor(rnd() * 3) : 8 + Math.floor(rnd() * 33)
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(rnd() * alphabet.length)]
      t.insert(at, s)
    }
  }
  mkdirSync(dir, { recursive: true })
  const parts = []
  for (const u of updates) { const h = Buffer.alloc(4); h.writeUInt32LE(u.length); parts.push(h, Buffer.from(u)) }
  writeFileSync(file, Buffer.concat(parts))
  return updates.map(u => Buffer.from(u))
}

async function scenarioJoin () {
  const { edits, joins, window: win = 512 } = cfg
  const updates = joinUpdates(edits)
  const logBytes = updates.reduce((a, u) => a + u.length, 0)
  const expectedText = (() => {
    const d = new Y.Doc()
    Y.transact(d, () => { for (const u of updates) Y.applyUpdate(d, u) })
    return d.getText('t').toString()
  })()
  const room = `${BASE}/join-${cfg.tag ?? 'r'}`
  // Build: a writer sends every edit; an observer counts relayed updates to pace the writer.
  let relayed = 0
  const observer = new Client(room, (self, data) => {
    if (data[0] === 0 && data[1] === 0) { self.send(SYNC_STEP2_EMPTY); self.greeted = true }
    else if (data[0] === 0 && data[1] === 2) relayed++
  })
  const writer = new Client(room, (self, data) => {
    if (data[0] === 0 && data[1] === 0) { self.send(SYNC_STEP2_EMPTY); self.greeted = true }
  })
  await observer.connect()
  await writer.connect()
  await waitUntil(() => observer.greeted && writer.greeted, 10000, 'greeting')
  const frames = updates.map(frameSyncUpdate)
  const tb0 = performance.now()
  let sent = 0
  await new Promise((resolve, reject) => {
    const deadline = performance.now() + 180000
    const pump = () => {
      while (sent < frames.length && sent < relayed + win) writer.send(frames[sent++])
      if (relayed >= frames.length) return resolve()
      if (performance.now() > deadline) return reject(new Error('build timeout'))
      setTimeout(pump, 1)
    }
    pump()
  })
  const buildS = (performance.now() - tb0) / 1000
  emit({ event: 'ready', edits, log_bytes: logBytes, build_s: buildS })
  await waitCommand('go', 120000)
  const cpu0 = cpuSeconds()
  const results = []
  for (let j = 0; j < joins; j++) {
    const got = []
    let bytes = 0
    let t1 = 0; let tOpen = 0
    let done = null
    const finished = new Promise(resolve => { done = resolve })
    const t0 = performance.now()
    const c = new Client(room, (self, data) => {
      bytes += data.length
      if (data[0] !== 0) return
      const syncType = data[1]
      if (syncType === 0) { self.send(SYNC_STEP2_EMPTY); return }
      if (syncType === 1 || syncType === 2) {
        const st = { pos: 2 }
        const len = readVarUint(data, st)
        got.push(data.subarray(st.pos, st.pos + len))
        if (syncType === 1) { t1 = performance.now(); done() }
      }
    })
    await c.connect()
    tOpen = performance.now()
    c.send(SYNC_STEP1_EMPTY)
    await Promise.race([finished, sleep(60000)])
    const ok = t1 > 0
    // Not timed: the client's own apply, and a check that it got exactly the document.
    const ta = performance.now()
    const d = new Y.Doc()
    Y.transact(d, () => { for (const u of got) Y.applyUpdate(d, u) })
    const applyMs = performance.now() - ta
    const match = d.getText('t').toString() === expectedText
    results.push({
      join_ms: ok ? t1 - tOpen : null,
      join_with_handshake_ms: ok ? t1 - t0 : null,
      bytes,
      messages: got.length,
      client_apply_ms: applyMs,
      content_matches: match
    })
    c.close()
    await sleep(100)
  }
  const cpu1 = cpuSeconds()
  const joinsMs = results.map(r => r.join_ms).filter(x => x !== null).sort((a, b) => a - b)
  emit({
    event: 'done',
    edits,
    log_bytes: logBytes,
    text_chars: expectedText.length,
    build_s: buildS,
    joins: results,
    join_ms_first: results[0].join_ms,
    join_ms_median: percentile(joinsMs, 50),
    all_match: results.every(r => r.content_matches),
    loadgen_cpu_s: cpu1 - cpu0
  })
  await waitCommand('quit', 60000).catch(() => {})
  observer.close(); writer.close()
}

// -- signaling fan-out -------------------------------------------------------------------------

async function scenarioSignal () {
  const { topics, subsPerTopic, window: win, seconds, drainSeconds = 10, path = '/' } = cfg
  const capacity = cfg.maxPublishes ?? 300000
  const remaining = []; const completed = []; const sent = []
  let stopAt = Infinity
  const topicState = []
  const all = []
  const padding = 'x'.repeat(cfg.payloadPadding ?? 200)
  for (let t = 0; t < topics; t++) {
    const st = { t, name: `bench-topic-${t}`, clients: [], tracks: [] }
    topicState.push(st)
    for (let s = 0; s < subsPerTopic; s++) {
      const track = new Track(capacity)
      const client = new Client(`${BASE}${path}`, (self, data) => {
        const msg = JSON.parse(data.toString())
        if (msg.type === 'pong') { self.ponged = true; return }
        if (msg.type !== 'publish' || !msg.data || msg.topic !== st.name) return
        const seq = msg.data.seq
        if (track.add(seq)) {
          const left = --remaining[t][seq]
          if (left === 0 && seq === completed[t]) {
            let k = completed[t] + 1
            while (k < sent[t] && remaining[t][k] === 0) k++
            completed[t] = k
            pump(t)
          }
        }
      })
      st.clients.push(client)
      st.tracks.push(track)
      all.push(client)
    }
  }
  const connectMs = await connectAll(all, 100, 60000)
  for (const st of topicState) {
    for (const c of st.clients) {
      c.send(JSON.stringify({ type: 'subscribe', topics: [st.name] }))
      c.send(JSON.stringify({ type: 'ping' }))
    }
  }
  await waitUntil(() => all.every(c => c.ponged), 30000, 'subscriptions')
  for (let t = 0; t < topics; t++) {
    remaining.push(new Uint16Array(capacity).fill(subsPerTopic))
    completed.push(0)
    sent.push(0)
  }
  const publisherId = t => `peer-${t}-0000-4000-8000-000000000000`
  function pump (t) {
    if (performance.now() >= stopAt) return
    const c = topicState[t].clients[0]
    while (sent[t] < capacity && sent[t] < completed[t] + win) {
      const seq = sent[t]++
      // Shaped like a y-webrtc "signal" publish (SDP/ICE payload elided to padding).
      c.send(JSON.stringify({
        type: 'publish',
        topic: topicState[t].name,
        data: { type: 'signal', from: publisherId(t), to: 'peer-any', seq, signal: { type: 'candidate', candidate: padding } }
      }))
    }
  }
  emit({ event: 'ready', connections: all.length, connect_ms: connectMs })
  await waitCommand('go', 120000)
  const cpu0 = cpuSeconds()
  const t0 = performance.now()
  stopAt = t0 + seconds * 1000
  for (let t = 0; t < topics; t++) pump(t)
  const poll = setInterval(() => { for (let t = 0; t < topics; t++) if (completed[t] === sent[t]) pump(t) }, 50)
  await sleep(seconds * 1000)
  const sentTotal = sent.reduce((a, b) => a + b, 0)
  const expected = sentTotal * subsPerTopic
  const delivered = () => topicState.reduce((a, s) => a + s.tracks.reduce((b, t) => b + t.unique, 0), 0)
  const tSend = performance.now()
  try { await waitUntil(() => delivered() >= expected, drainSeconds * 1000, 'drain') } catch {}
  const t1 = performance.now()
  clearInterval(poll)
  const tracks = []; const expectedPer = []
  topicState.forEach((s, t) => s.tracks.forEach(tr => { tracks.push(tr); expectedPer.push(sent[t]) }))
  const counts = sumTracks(tracks, expectedPer)
  const elapsed = (t1 - t0) / 1000
  emit({
    event: 'done',
    sent: sentTotal,
    expected,
    ...counts,
    elapsed_s: elapsed,
    drain_s: (t1 - tSend) / 1000,
    deliveries_per_s: counts.delivered / elapsed,
    loadgen_cpu_s: cpuSeconds() - cpu0,
    dropped_connections: all.filter(c => c.closedEarly).length
  })
  await waitCommand('quit', 60000).catch(() => {})
  closeAll(all)
}


// -- stream: one source, N viewers (protocols.md §3) ---------------------------------------------

const FRAME_HEAD = /^\{"type":"frame","seq":(\d+),"t":([0-9.]+),/

async function scenarioStream () {
  const { viewers, fps, kib, seconds, drainSeconds = 3 } = cfg
  const roomId = `bench-${cfg.tag ?? 'r'}`
  const total = Math.ceil(fps * seconds)
  const samples = new Float64Array(total * viewers)
  let nSamples = 0
  const control = msg => (msg.length < 4096 ? JSON.parse(msg.toString()) : null)
  const source = new Client(`${BASE}/stream`, (self, data) => {
    const msg = control(data)
    if (msg && msg.type === 'source-registered') self.registered = true
  })
  const tracks = []
  const clients = []
  for (let v = 0; v < viewers; v++) {
    const track = new Track(total)
    tracks.push(track)
    clients.push(new Client(`${BASE}/stream`, (self, data) => {
      if (data.length > 4096) {
        const m = FRAME_HEAD.exec(data.subarray(0, 80).toString())
        if (!m) { track.unknown++; return }
        if (track.add(Number(m[1]))) samples[nSamples++] = performance.now() - Number(m[2])
        return
      }
      const msg = control(data)
      if (msg && msg.type === 'source-available') self.available = true
    }))
  }
  await source.connect()
  source.send(JSON.stringify({ type: 'register-source', roomId }))
  await waitUntil(() => source.registered, 10000, 'source-registered')
  const connectMs = await connectAll(clients, 50, 60000)
  for (const c of clients) c.send(JSON.stringify({ type: 'join-room', roomId }))
  await waitUntil(() => clients.every(c => c.available), 20000, 'source-available')
  // An Edrys-style frame: a JPEG data URL of `kib` KiB (content is irrelevant to the relay).
  const payload = 'data:image/jpeg;base64,' + 'A'.repeat(kib * 1024 - 23)
  emit({ event: 'ready', connections: viewers + 1, connect_ms: connectMs })
  await waitCommand('go', 120000)
  const cpu0 = cpuSeconds()
  const t0 = performance.now() + 20
  let sent = 0
  await new Promise(resolve => {
    const tick = () => {
      const now = performance.now()
      while (sent < total && t0 + (sent * 1000) / fps <= now) {
        source.send(`{"type":"frame","seq":${sent},"t":${performance.now().toFixed(3)},"data":"${payload}"}`)
        sent++
      }
      if (sent >= total) resolve()
      else setTimeout(tick, Math.max(0, t0 + (sent * 1000) / fps - performance.now()))
    }
    setTimeout(tick, 20)
  })
  const expected = total * viewers
  try { await waitUntil(() => nSamples >= expected, drainSeconds * 1000, 'drain') } catch {}
  const t1 = performance.now()
  const elapsed = (t1 - t0) / 1000
  const sorted = Array.from(samples.subarray(0, nSamples)).sort((a, b) => a - b)
  const perViewer = tracks.map(t => t.unique / seconds).sort((a, b) => a - b)
  const counts = sumTracks(tracks, tracks.map(() => total))
  emit({
    event: 'done',
    sent: total,
    expected,
    delivered: counts.delivered,
    duplicated: counts.duplicated,
    reordered: counts.reordered,
    unknown: counts.unknown,
    // Latest-frame-wins drops frames for a viewer that is behind, by design: not a fault.
    not_delivered: counts.lost,
    lost: 0,
    elapsed_s: elapsed,
    fps_per_viewer_median: percentile(perViewer, 50),
    fps_per_viewer_min: perViewer[0],
    p50_ms: percentile(sorted, 50),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    mbytes_per_s: (counts.delivered * kib * 1024) / elapsed / 1e6,
    loadgen_cpu_s: cpuSeconds() - cpu0,
    dropped_connections: clients.filter(c => c.closedEarly).length
  })
  await waitCommand('quit', 60000).catch(() => {})
  closeAll([source, ...clients])
}

// -- connect rate: lean y-websocket clients on raw TCP -----------------------------------------

// The `ws` client costs the load generator ~400 µs of CPU per connection (its HTTP client,
// key generation and checks), as much as either server: a connect-rate figure taken with it
// measures the load generator. LeanClient speaks just enough RFC 6455 for a y-websocket sync:
// a fixed upgrade request, status check, masked client frames, unmasked server frames.
const UPGRADE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==' // RFC 6455 §1.3's sample key; servers accept any

class LeanClient {
  constructor (path, onMessage) {
    this.path = path
    this.onMessage = onMessage
    this.sock = null
    this.buf = null
    this.upgraded = false
    this.mask = Buffer.from([0x12, 0x34, 0x56, 0x78])
  }

  connect () {
    return new Promise((resolve, reject) => {
      const sock = tcpConnect({ host: HOST, port: cfg.port, noDelay: true })
      this.sock = sock
      sock.on('connect', () => {
        sock.write(`GET ${this.path} HTTP/1.1\r\nHost: ${HOST}:${cfg.port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${UPGRADE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      })
      sock.on('data', chunk => {
        this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk
        if (!this.upgraded) {
          const end = this.buf.indexOf('\r\n\r\n')
          if (end < 0) return
          if (this.buf.toString('latin1', 0, 12) !== 'HTTP/1.1 101') {
            reject(new Error(`upgrade refused: ${this.buf.toString('latin1', 0, 40)}`))
            sock.destroy()
            return
          }
          this.upgraded = true
          this.buf = this.buf.subarray(end + 4)
          resolve()
        }
        this.parse()
      })
      sock.on('error', err => { if (!this.upgraded) reject(err) })
    })
  }

  parse () {
    let buf = this.buf
    while (buf.length >= 2) {
      let len = buf[1] & 0x7f
      let head = 2
      if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); head = 4 }
      else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); head = 10 }
      if (buf.length < head + len) break
      const opcode = buf[0] & 0x0f
      if (opcode === 2) this.onMessage(this, buf.subarray(head, head + len))
      buf = buf.subarray(head + len)
    }
    this.buf = buf.length ? buf : null
  }

  send (data) {
    const n = data.length
    const head = n < 126 ? Buffer.from([0x82, 0x80 | n]) : Buffer.from([0x82, 0xfe, n >> 8, n & 0xff])
    const body = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) body[i] = data[i] ^ this.mask[i & 3]
    this.sock.write(Buffer.concat([head, this.mask, body]))
  }

  close () { this.sock.destroy() }
}

/** New y-websocket connections to one room with content, each until it is synced. */
async function scenarioConnect () {
  const { connections, parallel = 100, edits = 1000 } = cfg
  const path = `/connect-${cfg.tag ?? 'r'}`
  // The room's content: `edits` keystrokes, relayed to an observer before the measured phase.
  let relayed = 0
  const observer = new Client(`${BASE}${path}`, (self, data) => {
    if (data[0] === 0 && data[1] === 0) { self.send(SYNC_STEP2_EMPTY); self.greeted = true }
    else if (data[0] === 0 && data[1] === 2) relayed++
  })
  const writer = new Client(`${BASE}${path}`, (self, data) => {
    if (data[0] === 0 && data[1] === 0) { self.send(SYNC_STEP2_EMPTY); self.greeted = true }
  })
  await observer.connect()
  await writer.connect()
  await waitUntil(() => observer.greeted && writer.greeted, 10000, 'greeting')
  for (const frame of typingUpdates(900000, edits)) writer.send(frame)
  await waitUntil(() => relayed >= edits, 60000, 'room content')
  const clients = []
  for (let i = 0; i < connections; i++) {
    clients.push(new LeanClient(path, (self, data) => {
      // Like a y-websocket provider: answer the server's step 1, synced on its step 2.
      if (data[0] !== 0) return
      if (data[1] === 0) self.send(SYNC_STEP2_EMPTY)
      else if (data[1] === 1 && self.onSynced) self.onSynced()
    }))
  }
  emit({ event: 'ready', connections: 2, edits })
  await waitCommand('go', 120000)
  const cpu0 = cpuSeconds()
  const t0 = performance.now()
  let next = 0
  let failed = 0
  let synced = 0
  async function worker () {
    while (next < clients.length) {
      const c = clients[next++]
      try {
        const done = new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('sync timeout')), 30000)
          c.onSynced = () => { clearTimeout(timer); c.onSynced = null; resolve() }
        })
        await c.connect()
        c.send(SYNC_STEP1_EMPTY)
        await done
        synced++
      } catch { failed++ }
    }
  }
  const workers = []
  for (let i = 0; i < parallel; i++) workers.push(worker())
  await Promise.race([Promise.all(workers), sleep(120000)])
  const elapsedMs = performance.now() - t0
  emit({
    event: 'done',
    connections: synced,
    failed,
    connect_ms: elapsedMs,
    connects_per_s: synced / (elapsedMs / 1000),
    loadgen_cpu_s: cpuSeconds() - cpu0
  })
  await waitCommand('quit', 120000).catch(() => {})
  closeAll([observer, writer, ...clients])
}

// -- main --------------------------------------------------------------------------------------

const scenarios = {
  fanout: scenarioFanout,
  latency: scenarioLatency,
  idle: scenarioIdle,
  connect: scenarioConnect,
  join: scenarioJoin,
  signal: scenarioSignal,
  stream: scenarioStream
}

try {
  await scenarios[cfg.kind]()
  clearTimeout(hardTimer)
  process.exit(0)
} catch (err) {
  emit({ event: 'error', message: String(err && err.stack ? err.stack : err) })
  process.exit(2)
}
