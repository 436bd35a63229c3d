// Browser side of tests/webrtc: bundled at test time with esbuild from the npm packages pinned in
// tests/interop/package.json (yjs, y-webrtc). The Python test drives it through window.edrysTest.
import * as Y from 'yjs'
import { WebrtcProvider } from 'y-webrtc'

let doc = null
let provider = null

window.edrysTest = {
  /** Create a Y.Doc and a WebrtcProvider that uses only the given signaling servers. */
  start ({ room, signaling, password }) {
    doc = new Y.Doc()
    provider = new WebrtcProvider(room, doc, { signaling, password })
    return doc.clientID
  },

  /** Write key=value into the shared map `m`. */
  set (key, value) {
    doc.getMap('m').set(key, value)
  },

  /** Plain JSON of the shared map `m`. */
  map () {
    return doc.getMap('m').toJSON()
  },

  /** What the provider knows about its peers and signaling connections. */
  state () {
    const room = provider.room
    const conns = room
      ? [...room.webrtcConns.entries()].map(([remotePeerId, conn]) => ({
          remotePeerId,
          connected: conn.connected,
          synced: conn.synced,
          iceConnectionState: conn.peer._pc ? conn.peer._pc.iceConnectionState : null,
          channelState: conn.peer._channel ? conn.peer._channel.readyState : null
        }))
      : []
    return {
      peerId: room ? room.peerId : null,
      bcConns: room ? room.bcConns.size : null,
      conns,
      signalingConnected: provider.signalingConns.map((c) => c.connected)
    }
  },

  /** Local and remote candidates of each peer connection's selected (succeeded) ICE pair. */
  async selectedPairs () {
    const pairs = []
    for (const conn of provider.room.webrtcConns.values()) {
      const stats = await conn.peer._pc.getStats()
      const byId = new Map()
      stats.forEach((s) => byId.set(s.id, s))
      stats.forEach((s) => {
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) {
          const local = byId.get(s.localCandidateId)
          const remote = byId.get(s.remoteCandidateId)
          pairs.push({
            local: local && { address: local.address, type: local.candidateType },
            remote: remote && { address: remote.address, type: remote.candidateType },
            bytesSent: s.bytesSent,
            bytesReceived: s.bytesReceived
          })
        }
      })
    }
    return pairs
  }
}
