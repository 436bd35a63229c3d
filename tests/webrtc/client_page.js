// Browser side of tests/webrtc/test_client_browser.py, bundled with esbuild from the npm packages
// pinned in tests/interop/package.json. Stock upstream y-webrtc 10.3.0 (plain data-channel framing).
import * as Y from 'yjs'
import { WebrtcProvider } from 'y-webrtc'

let doc = null
let provider = null

window.clientTest = {
  /** Join `room` through `signaling` with `password`; `peerOpts` go to simple-peer. */
  start ({ room, signaling, password, peerOpts }) {
    doc = new Y.Doc()
    provider = new WebrtcProvider(room, doc, { signaling, password, peerOpts: peerOpts || {} })
    return doc.clientID
  },
  set (key, value) { doc.getMap('m').set(key, value) },
  map () { return doc.getMap('m').toJSON() },
  /** JSON.stringify of one value of map `m` (undefined while absent). */
  stringify (key) {
    const value = doc.getMap('m').get(key)
    return value === undefined ? undefined : JSON.stringify(value)
  },
  /** Open WebRTC connections: [{remotePeerId, connected, synced}]. */
  conns () {
    if (!provider.room) return []
    return [...provider.room.webrtcConns.entries()].map(([remotePeerId, c]) => ({
      remotePeerId, connected: c.connected, synced: c.synced
    }))
  },
  /** WebCrypto's verdict on an Edrys challenge signature (base64 raw P-256 key, base64 r||s). */
  async verifyChallenge ({ publicKey, signature, text }) {
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
    const key = await crypto.subtle.importKey(
      'raw', bytes(publicKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify'])
    return crypto.subtle.verify(
      { name: 'ECDSA', hash: 'SHA-256' }, key, bytes(signature), new TextEncoder().encode(text))
  },
  /** Leave the room for good. */
  leave () { provider.destroy(); doc.destroy() }
}
