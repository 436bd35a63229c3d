// The /stream message sequence of protocols.md §3, spoken by the `ws` package (the library the
// Node relay and Edrys-Lite's Node tooling use), against the server at argv[2].
// Prints one JSON line {"ok": true, "checks": [...]} or exits 1 with the failed check.
import assert from 'node:assert/strict'
import WebSocket from 'ws'

const base = process.argv[2]
const checks = []
const check = (name, fn) => { fn(); checks.push(name) }

function open (query = '') {
  const ws = new WebSocket(base + query)
  const queue = []
  const waiters = []
  ws.on('message', (data, isBinary) => {
    const message = isBinary ? { binary: Buffer.from(data) } : { text: data.toString() }
    const waiter = waiters.shift()
    if (waiter) waiter(message); else queue.push(message)
  })
  const raw = () => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for a message')), 5000)
    const done = (message) => { clearTimeout(timer); resolve(message) }
    if (queue.length) done(queue.shift()); else waiters.push(done)
  })
  // the next message, skipping the server's periodic pings unless asked for
  const next = async (pings = false) => {
    for (let i = 0; i < 100; i++) {
      const message = await raw()
      if (message.binary) return message
      const value = JSON.parse(message.text)
      if (pings || value.type !== 'ping') return { ...message, value }
    }
    throw new Error('only pings')
  }
  const send = (value) => ws.send(typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value))
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, next, send }))
    ws.once('error', reject)
  })
}

const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(3000, 7)])
const dataUrl = 'data:image/jpeg;base64,' + jpeg.toString('base64')
function binaryFrame (image, timestamp) {
  const header = Buffer.alloc(16)
  header.write('ESF1', 0, 'latin1')
  header.writeUInt8(1, 4) // JPEG
  header.writeDoubleBE(timestamp, 8)
  return Buffer.concat([header, image])
}

const viewer = await open()
const info = (await viewer.next()).value
check('info greeting', () => assert.deepEqual(info, {
  type: 'info', message: 'Connected to WebSocket streaming server', sources: [], clients: 0
}))
const source = await open('?userid=station')
const sourceInfo = (await source.next()).value
check('info counts the other clients', () => assert.equal(sourceInfo.clients, 1))
viewer.send({ type: 'join-room', roomId: 'lab' })

source.send({ type: 'register-source' })
const noRoom = (await source.next()).value
check('register without roomId', () => assert.deepEqual(noRoom, {
  type: 'error', message: 'Room ID is required to register as source'
}))
source.send({ type: 'join-room', roomId: '' })
const noJoin = (await source.next()).value
check('join without roomId', () => assert.deepEqual(noJoin, {
  type: 'error', message: 'Room ID is required to join a room'
}))
source.send({ type: 'register-source', roomId: 'lab' })
const registered = (await source.next()).value
check('source-registered', () => assert.deepEqual(registered, { type: 'source-registered', roomId: 'lab' }))
const available = (await viewer.next()).value
check('source-available on register', () => assert.deepEqual(available, { type: 'source-available', roomId: 'lab' }))

const rival = await open()
const rivalInfo = (await rival.next()).value
check('info lists active sources', () => assert.deepEqual(rivalInfo.sources, ['lab']))
rival.send({ type: 'register-source', roomId: 'lab' })
const busy = (await rival.next()).value
check('second source refused', () => assert.deepEqual(busy, {
  type: 'error', message: 'Room lab already has an active source'
}))

const binaryViewer = await open('?binary=1')
await binaryViewer.next()
binaryViewer.send({ type: 'join-room', roomId: 'lab' })
const available2 = (await binaryViewer.next()).value
check('source-available on join', () => assert.deepEqual(available2, { type: 'source-available', roomId: 'lab' }))

const text = `{"type":"frame", "data":"${dataUrl}","settings":{"quality":0.7},"timestamp":1764115200123}`
source.send(text)
const forwarded = await viewer.next()
check('JSON frame forwarded as the original text', () => assert.equal(forwarded.text, text))
const asBinary = await binaryViewer.next()
check('binary viewer gets the JSON frame as a binary frame', () => {
  assert.ok(asBinary.binary)
  assert.equal(asBinary.binary.subarray(0, 4).toString('latin1'), 'ESF1')
  assert.equal(asBinary.binary.readDoubleBE(8), 1764115200123)
  assert.ok(asBinary.binary.subarray(16).equals(jpeg))
})

const raw = binaryFrame(jpeg, 42)
source.send(raw)
const fromBinary = await viewer.next()
check('JSON viewer gets a binary source frame as a data URL', () => assert.deepEqual(
  fromBinary.value, { type: 'frame', data: dataUrl, timestamp: 42 }))
const sameBinary = await binaryViewer.next()
check('binary viewer gets the binary frame unchanged', () => assert.ok(sameBinary.binary.equals(raw)))

viewer.send({ type: 'ping', timestamp: 99 })
const pong = (await viewer.next()).value
check('pong with both timestamps', () => {
  assert.deepEqual(Object.keys(pong), ['type', 'timestamp', 'clientTimestamp'])
  assert.equal(pong.type, 'pong')
  assert.equal(pong.clientTimestamp, 99)
  assert.ok(Math.abs(pong.timestamp - Date.now()) < 60000)
})

const ping = (await viewer.next(true)).value
check('periodic ping with stats', () => {
  assert.equal(ping.type, 'ping')
  assert.deepEqual(Object.keys(ping.stats), ['clients', 'fps', 'dropped'])
})
viewer.send({ type: 'pong-response', serverTimestamp: ping.timestamp })
viewer.send({ type: 'stats', fps: 15, bufferSize: 0, dropped: 0 })
const ping2 = (await viewer.next(true)).value
check('alive after a second ping round (ws answers WebSocket pings)', () => {
  assert.equal(ping2.type, 'ping')
  assert.equal(viewer.ws.readyState, WebSocket.OPEN)
})

source.ws.close()
const gone = (await viewer.next()).value
const gone2 = (await binaryViewer.next()).value
check('source-disconnected to the room', () => {
  assert.deepEqual(gone, { type: 'source-disconnected', roomId: 'lab' })
  assert.deepEqual(gone2, { type: 'source-disconnected', roomId: 'lab' })
})
rival.send({ type: 'register-source', roomId: 'lab' })
const takeover = (await rival.next()).value
check('room free for a new source', () => assert.deepEqual(takeover, { type: 'source-registered', roomId: 'lab' }))

for (const c of [viewer, rival, binaryViewer]) c.ws.close()
console.log(JSON.stringify({ ok: true, checks }))
