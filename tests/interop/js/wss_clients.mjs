// Stock clients over wss with a test CA (run with NODE_EXTRA_CA_CERTS=<ca.pem>).
// Usage: node wss_clients.mjs <wss://host:port> <room> <token> <read-only token>
// 1. two y-websocket 3.0.0 providers sync a Y.Text, the token given as the "yauth-<token>"
//    subprotocol (one) and as the "token" URL parameter (the other);
// 2. a provider with the read-only token receives the text, then edits locally (the server
//    must drop that; the Python side checks);
// 3. two lib0 WebsocketClient signaling clients (what y-webrtc uses) subscribe and publish.
// Prints "ok" and exits 0, or exits 1 after 15 s.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { WebsocketClient } from 'lib0/websocket'

const [url, room, token, readToken] = process.argv.slice(2)
globalThis.WebSocket = WebSocket
setTimeout(() => { console.error('timeout'); process.exit(1) }, 15000)

const docA = new Y.Doc()
const docB = new Y.Doc()
const a = new WebsocketProvider(url, room, docA, {
  WebSocketPolyfill: WebSocket, protocols: ['yauth', `yauth-${token}`], disableBc: true
})
const b = new WebsocketProvider(url, room, docB, {
  WebSocketPolyfill: WebSocket, params: { token }, disableBc: true
})
await new Promise(resolve => a.on('sync', synced => synced && resolve()))
docA.getText('t').insert(0, 'over wss')
await new Promise(resolve => {
  const check = () => docB.getText('t').toString() === 'over wss' && resolve()
  docB.on('update', check)
  check()
})
a.destroy()
b.destroy()

const docC = new Y.Doc()
const c = new WebsocketProvider(url, room, docC, {
  WebSocketPolyfill: WebSocket, params: { token: readToken }, disableBc: true
})
await new Promise(resolve => c.on('sync', synced => synced && resolve()))
if (docC.getText('t').toString() !== 'over wss') process.exit(1)
docC.getText('t').insert(0, 'pupil ')
await new Promise(resolve => {
  const drained = () => (c.ws && c.ws.bufferedAmount === 0 ? resolve() : setTimeout(drained, 10))
  drained()
})
c.destroy()

const signalingUrl = `${url}/?token=${encodeURIComponent(token)}`
const alice = new WebsocketClient(signalingUrl)
const bob = new WebsocketClient(signalingUrl)
const connected = c => new Promise(resolve => c.on('connect', resolve))
await Promise.all([connected(alice), connected(bob)])
const received = new Promise(resolve => bob.on('message', m => m.type === 'publish' && resolve(m)))
alice.send({ type: 'subscribe', topics: [room] })
bob.send({ type: 'subscribe', topics: [room] })
// subscriptions are processed in order per connection; publish after a ping round trip
await new Promise(resolve => { alice.on('message', m => m.type === 'pong' && resolve()); alice.send({ type: 'ping' }) })
await new Promise(resolve => { bob.on('message', m => m.type === 'pong' && resolve()); bob.send({ type: 'ping' }) })
alice.send({ type: 'publish', topic: room, data: 'signal over wss' })
const message = await received
if (message.data !== 'signal over wss' || 'clients' in message) process.exit(1)
alice.destroy()
bob.destroy()
console.log('ok')
process.exit(0)
