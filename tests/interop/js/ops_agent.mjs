// Stock clients for the operations tests, driven by JSON lines on stdin (one reply per line):
// y-websocket 3.0.0 providers and lib0 WebsocketClient signaling clients (what y-webrtc uses),
// each optionally from a chosen local address (127.0.0.x) and with extra request headers, so
// tests can act as several client machines behind one reverse proxy. wss:// works with
// NODE_EXTRA_CA_CERTS=<test CA>. Request: {"id": n, "cmd": "...", ...}; reply {"id": n, "ok": ...}.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { WebsocketClient } from 'lib0/websocket'
import { serveCommands } from './agentkit.mjs'

const clients = new Map()

// A WebSocket class that connects from `localAddress` and sends `headers` on every (re)connect.
const socketClass = ({ localAddress, headers }) => class extends WebSocket {
  constructor (url, protocols) {
    super(url, protocols, { localAddress, headers })
  }
}

const get = (name) => {
  const client = clients.get(name)
  if (!client) throw new Error(`no client ${name}`)
  return client
}

const openYjs = ({ name, url, room, params, localAddress, headers }) => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, {
    WebSocketPolyfill: socketClass({ localAddress, headers }),
    params: params || {},
    disableBc: true
  })
  const client = { kind: 'yjs', doc, provider, connects: 0, codes: [], synced: false }
  provider.on('status', ({ status }) => { if (status === 'connected') client.connects++ })
  provider.on('connection-close', (event) => { client.codes.push(event ? event.code : null) })
  provider.on('sync', (synced) => { client.synced = synced })
  clients.set(name, client)
  return true
}

const openSignaling = ({ name, url, localAddress, headers }) => {
  // lib0 opens its socket with the global WebSocket, on every reconnect too.
  globalThis.WebSocket = socketClass({ localAddress, headers })
  const ws = new WebsocketClient(url)
  const client = { kind: 'signaling', ws, connects: 0, disconnects: 0, received: [] }
  ws.on('connect', () => { client.connects++ })
  ws.on('disconnect', () => { client.disconnects++ })
  ws.on('message', (m) => { if (m.type === 'publish') client.received.push(m.data) })
  clients.set(name, client)
  return true
}

const commands = {
  open_yjs: openYjs,
  open_signaling: openSignaling,
  text_insert: ({ name, text }) => {
    const t = get(name).doc.getText('t')
    t.insert(t.length, text)
    return t.length
  },
  text_get: ({ name }) => get(name).doc.getText('t').toString(),
  yjs_stats: ({ name }) => {
    const c = get(name)
    return { connects: c.connects, codes: c.codes, synced: c.synced, connected: c.provider.wsconnected }
  },
  signal_send: ({ name, message }) => { get(name).ws.send(message); return true },
  signal_stats: ({ name }) => {
    const c = get(name)
    return { connects: c.connects, disconnects: c.disconnects, connected: c.ws.connected, received: c.received }
  },
  close: ({ name }) => {
    const c = get(name)
    if (c.kind === 'yjs') { c.provider.destroy(); c.doc.destroy() } else c.ws.destroy()
    clients.delete(name)
    return true
  }
}

serveCommands(commands, () => {
  for (const c of clients.values()) {
    if (c.kind === 'yjs') c.provider.destroy(); else c.ws.destroy()
  }
  process.exit(0)
})
