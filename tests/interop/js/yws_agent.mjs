// A Node process that holds stock y-websocket providers and obeys JSON commands on stdin.
// One command per line: {"id": n, "cmd": "...", ...}; one reply per line: {"id": n, "ok": ...}.
// Used by tests/interop/node_agent.py so pytest can drive real yjs + y-websocket clients.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { providerCommands, serveCommands } from './agentkit.mjs'

const clients = new Map()

const open = ({ name, url, room, params }) => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, {
    WebSocketPolyfill: WebSocket,
    params: params || {},
    disableBc: true
  })
  const client = { doc, provider, closes: 0, connects: 0, synced: false }
  provider.on('status', ({ status }) => { if (status === 'connected') client.connects++ })
  provider.on('connection-close', () => { client.closes++ })
  provider.on('sync', (synced) => { client.synced = synced })
  clients.set(name, client)
  return true
}

const get = (name) => {
  const client = clients.get(name)
  if (!client) throw new Error(`no client ${name}`)
  return client
}

const commands = {
  open,
  synced: ({ name }) => get(name).synced,
  text_insert: ({ name, index, text }) => {
    const t = get(name).doc.getText('t')
    t.insert(index ?? t.length, text)
    return t.length
  },
  text_delete: ({ name, index, length }) => { get(name).doc.getText('t').delete(index, length); return true },
  text_get: ({ name }) => get(name).doc.getText('t').toString(),
  ...providerCommands(get),
  client_id: ({ name }) => get(name).doc.clientID,
  stats: ({ name }) => {
    const c = get(name)
    return { connects: c.connects, closes: c.closes, synced: c.synced, wsconnected: c.provider.wsconnected }
  },
  disconnect: ({ name }) => { get(name).provider.disconnect(); return true },
  connect: ({ name }) => { get(name).provider.connect(); return true },
  close: ({ name }) => { const c = get(name); c.provider.destroy(); c.doc.destroy(); clients.delete(name); return true }
}

serveCommands(commands, () => {
  for (const c of clients.values()) c.provider.destroy()
  process.exit(0)
})
