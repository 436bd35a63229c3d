// Stock clients given only the URLs that `edrys-relay token ROOM --server URL` prints
// (the token in the URL path), against a server with access control on.
// Usage: node path_token_clients.mjs '<json>' with keys room, userid, plain, healthz,
// websocket, readOnly, signaling, stream, sourceStream.
// Each step prints one line "step <name>"; the last line is "ok" (exit 0), else exit 1.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { WebsocketClient } from 'lib0/websocket'

const cfg = JSON.parse(process.argv[2])
globalThis.WebSocket = WebSocket
setTimeout(() => { console.error('timeout'); process.exit(1) }, 40000)
const fail = (why) => { console.error(why); process.exit(1) }
const step = (name) => console.log(`step ${name}`)
const health = async () => (await (await fetch(cfg.healthz)).json()).security
const until = async (check, why) => {
  const deadline = Date.now() + 10000
  while (!(await check())) {
    if (Date.now() > deadline) fail(`gave up waiting: ${why}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

// As Edrys-Lite's EdrysWebsocketProvider builds it (protocols.md §2.1): the classroom's
// server URL, the room name appended unencoded, and the userid parameter.
const provider = (url, doc, params) => new WebsocketProvider(url, cfg.room, doc, {
  WebSocketPolyfill: WebSocket, disableBc: true, ...(params ? { params } : {})
})
const synced = p => until(() => p.synced, `sync with ${p.url.replace(/\/t\/[^/]+/, '/t/…')}`)
const text = doc => doc.getText('t').toString()
const textIs = (doc, value) => new Promise(resolve => {
  const check = () => text(doc) === value && resolve()
  doc.on('update', check)
  check()
})

// 1. the plain server URL: refused before the upgrade, again and again, never synced
const plainDoc = new Y.Doc()
const before = (await health()).refused_token
const plain = provider(cfg.plain, plainDoc, { userid: cfg.userid })

// 2. the websocket: URL syncs (a trailing '/' as a teacher may paste it; y-websocket strips it)
const docA = new Y.Doc()
const a = provider(cfg.websocket + '/', docA, { userid: cfg.userid })
await synced(a)
docA.getText('t').insert(0, 'teacher')
const docB = new Y.Doc()
const b = provider(cfg.websocket, docB) // only the URL, no params
await synced(b)
await textIs(docB, 'teacher')
step('websocket url syncs')

// 3. the read-only URL receives everything; its edit is dropped at the server
const docR = new Y.Doc()
const reader = provider(cfg.readOnly, docR, { userid: cfg.userid })
await synced(reader)
await textIs(docR, 'teacher')
const dropped = (await health()).read_only_dropped
docR.getText('t').insert(0, 'pupil ')
await until(async () => (await health()).read_only_dropped > dropped, 'the read-only edit dropped')
const docL = new Y.Doc()
const late = provider(cfg.websocket, docL)
await synced(late)
if (text(docA) !== 'teacher' || text(docB) !== 'teacher' || text(docL) !== 'teacher') {
  fail(`a read-only edit reached others: ${text(docA)} / ${text(docB)} / ${text(docL)}`)
}
step('read-only edit does not reach others')

await until(async () => (await health()).refused_token >= before + 3, 'three refusals of the plain URL')
if (plain.synced || plain.wsconnected || text(plainDoc) !== '') fail('the plain URL synced')
step('plain url refused')
for (const p of [plain, a, b, reader, late]) p.destroy()

// 4. the signaling: URL, verbatim as y-webrtc uses it: subscribe and publish in the room
const alice = new WebsocketClient(cfg.signaling)
const bob = new WebsocketClient(cfg.signaling)
await Promise.all([alice, bob].map(c => new Promise(resolve => c.on('connect', resolve))))
const received = new Promise(resolve => bob.on('message', m => m.type === 'publish' && resolve(m)))
const refusedTopics = (await health()).topics_refused
for (const c of [alice, bob]) {
  c.send({ type: 'subscribe', topics: [cfg.room, 'another-room'] })
  // subscriptions are handled in order: a pong means ours were
  await new Promise(resolve => { c.on('message', m => m.type === 'pong' && resolve()); c.send({ type: 'ping' }) })
}
alice.send({ type: 'publish', topic: 'another-room', data: 'snoop' })
alice.send({ type: 'publish', topic: cfg.room, data: 'announce' })
const message = await received
if (message.topic !== cfg.room || message.data !== 'announce') fail(`wrong publish ${JSON.stringify(message)}`)
if ((await health()).topics_refused < refusedTopics + 3) fail('a topic without a token was joined')
alice.destroy()
bob.destroy()
step('signaling url subscribes and publishes')

// 5. the stream: URLs, as Edrys-Lite's streamHandler opens them (plain WebSocket, JSON text)
const open = url => new Promise((resolve, reject) => {
  const ws = new WebSocket(url)
  const messages = []
  const waiters = []
  ws.on('message', data => {
    const m = JSON.parse(data.toString())
    messages.push(m)
    waiters.splice(0).forEach(w => w())
  })
  ws.next = async (type) => {
    while (true) {
      const i = messages.findIndex(m => m.type === type)
      if (i >= 0) return messages.splice(i, 1)[0]
      await new Promise(resolve => waiters.push(resolve))
    }
  }
  ws.on('open', () => resolve(ws))
  ws.on('unexpected-response', (_, res) => reject(new Error(`HTTP ${res.statusCode}`)))
})
const station = await open(cfg.sourceStream)
const viewer = await open(cfg.stream)
viewer.send(JSON.stringify({ type: 'join-room', roomId: cfg.room }))
station.send(JSON.stringify({ type: 'register-source', roomId: cfg.room }))
await station.next('source-registered')
await viewer.next('source-available')
const frame = JSON.stringify({ type: 'frame', data: 'data:image/jpeg;base64,/9j/4AAQ' })
station.send(frame)
if ((await viewer.next('frame')).data !== 'data:image/jpeg;base64,/9j/4AAQ') fail('frame changed')
station.close()
viewer.close()
step('stream urls relay a frame')
console.log('ok')
process.exit(0)
