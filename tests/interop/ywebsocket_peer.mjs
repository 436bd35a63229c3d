// A stock y-websocket 3.0.0 client driven over stdin/stdout, for tests/interop/test_client_ywebsocket.py.
// Usage: node ywebsocket_peer.mjs SERVER_URL ROOM
// stdin, one JSON per line: {"op":"set","key":K,"value":V} | {"op":"presence","state":S} | {"op":"quit"}
// stdout, one JSON per line: {"event":"ready","clientID":N} | {"event":"status",...} |
//   {"event":"synced"} | {"event":"map","value":{...}} | {"event":"awareness","states":[[id,state],...]}
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const [serverUrl, room] = process.argv.slice(2)
const doc = new Y.Doc()
const map = doc.getMap('m')
const provider = new WebsocketProvider(serverUrl, room, doc, { WebSocketPolyfill: WebSocket })
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

out({ event: 'ready', clientID: doc.clientID })
provider.on('status', ({ status }) => out({ event: 'status', status }))
provider.on('sync', (synced) => { if (synced) out({ event: 'synced' }) })
doc.on('update', () => out({ event: 'map', value: map.toJSON() }))
provider.awareness.on('change', () => {
  out({ event: 'awareness', states: [...provider.awareness.getStates().entries()] })
})

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line)
  if (cmd.op === 'set') map.set(cmd.key, cmd.value)
  else if (cmd.op === 'presence') provider.awareness.setLocalState(cmd.state)
  else if (cmd.op === 'quit') { provider.destroy(); process.exit(0) }
})
