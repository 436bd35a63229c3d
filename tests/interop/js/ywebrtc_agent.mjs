// A Node process that holds stock y-webrtc providers (WebRTC from @roamhq/wrtc) and obeys JSON
// commands on stdin, like yws_agent.mjs: {"id": n, "cmd": "...", ...} → {"id": n, "ok": ...}.
//
//   node js/ywebrtc_agent.mjs [plain|edrys]
//
// plain (default): npm y-webrtc as published. edrys: y-webrtc's SimplePeer replaced by the
// classroom page's FramedPeer (web/src/framing.js: the 40-byte chunk framing of Edrys-Lite's
// fork) through a module resolve hook, as web/build.mjs does for the page.
import { register } from 'node:module'
import wrtc from '@roamhq/wrtc'
import WebSocket from 'ws'
import { providerCommands, serveCommands } from './agentkit.mjs'

const framing = process.argv[2] || 'plain'
if (framing === 'edrys') register('./edrys_framing_hook.mjs', import.meta.url)
globalThis.WebSocket ??= WebSocket
// Providers of one process would otherwise meet over BroadcastChannel instead of WebRTC.
globalThis.BroadcastChannel = undefined

const Y = await import('yjs')
const { WebrtcProvider } = await import('y-webrtc')
// the framed peers' byte and message counters (the same module instance y-webrtc got)
const traffic = framing === 'edrys' ? (await import('../../../web/src/framing.js')).traffic : null

const peers = new Map()

const get = (name) => {
  const peer = peers.get(name)
  if (!peer) throw new Error(`no peer ${name}`)
  return peer
}

const commands = {
  open: ({ name, signaling, room, password }) => {
    const doc = new Y.Doc()
    const provider = new WebrtcProvider(room, doc, { signaling, password, peerOpts: { wrtc } })
    peers.set(name, { doc, provider })
    return doc.clientID
  },
  ...providerCommands(get),
  /** Open WebRTC connections: [{remotePeerId, connected, synced}]. */
  conns: ({ name }) => {
    const room = get(name).provider.room
    if (!room) return []
    return [...room.webrtcConns.entries()].map(([remotePeerId, c]) => ({
      remotePeerId, connected: c.connected, synced: c.synced
    }))
  },
  /** With the Edrys framing: framed bytes and messages sent and received by all peers. */
  traffic: () => traffic,
  close: ({ name }) => {
    const peer = get(name)
    peer.provider.destroy()
    peer.doc.destroy()
    peers.delete(name)
    return true
  }
}

serveCommands(commands, () => {
  for (const peer of peers.values()) peer.provider.destroy()
  // wrtc keeps native threads alive: leave once the goodbyes had a moment to go out
  setTimeout(() => process.exit(0), 200)
})
