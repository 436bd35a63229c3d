// One Y.Doc, one Awareness, and whichever provider the settings ask for.
// Switching the method destroys the old provider and starts a new one on the
// same document, so chat and notes survive the switch.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { WebrtcProvider } from 'y-webrtc'
import { Awareness } from 'y-protocols/awareness'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import { traffic as rtcTraffic } from './framing.js'
import { identity, greetNewPeers } from './identity.js'

// Edrys-Lite always encrypts WebRTC signaling; its password is 'password'
// unless set (docs/protocols.md §5.1), so that is our default too.
export const DEFAULT_PASSWORD = 'password'
const TICK_MS = 1000
const RTT_PROBE_MS = 5000
const PEEK_EVERY_MS = 10000

/** WebSocket that counts bytes and times sync step 1 -> step 2 round trips. */
function countingWebSocket (stats) {
  return class CountingWebSocket extends WebSocket {
    constructor (...args) {
      super(...args)
      stats.websocketDoorOpened++
      this.addEventListener('message', event => {
        const bytes = new Uint8Array(event.data)
        stats.bytesIn += bytes.byteLength
        if (bytes[0] === 0 && bytes[1] === 1 && stats._probeSentAt) {
          stats.rttMs = Math.round(performance.now() - stats._probeSentAt)
          stats._probeSentAt = 0
        }
      })
    }

    send (data) {
      const bytes = new Uint8Array(data.buffer ? data.buffer : data, data.byteOffset || 0, data.byteLength)
      stats.bytesOut += bytes.byteLength
      if (bytes[0] === 0 && bytes[1] === 0) stats._probeSentAt = performance.now()
      super.send(data)
    }
  }
}

/** Awareness states of other members in a y-websocket room, without joining it. */
export function peekWebsocketRoom (url, room, timeoutMs = 1500) {
  return new Promise(resolve => {
    const states = []
    let ws
    const done = () => { try { ws.close() } catch (e) {} resolve(states) }
    try { ws = new WebSocket(`${url.replace(/\/+$/, '')}/${room}`) } catch (e) { return resolve(states) }
    ws.binaryType = 'arraybuffer'
    const timer = setTimeout(done, timeoutMs)
    ws.onerror = () => { clearTimeout(timer); done() }
    ws.onmessage = event => {
      const decoder = decoding.createDecoder(new Uint8Array(event.data))
      if (decoding.readVarUint(decoder) !== 1) return // only awareness (type 1) matters
      const update = decoding.createDecoder(decoding.readVarUint8Array(decoder))
      for (let n = decoding.readVarUint(update); n > 0; n--) {
        decoding.readVarUint(update) // client id
        decoding.readVarUint(update) // clock
        const state = JSON.parse(decoding.readVarString(update))
        if (state !== null) states.push(state)
      }
      clearTimeout(timer)
      done()
    }
  })
}

export class Session extends EventTarget {
  constructor (room, { autoTimeoutMs = 10000 } = {}) {
    super()
    this.room = room
    this.doc = new Y.Doc()
    this.awareness = new Awareness(this.doc)
    this.chat = this.doc.getArray('relayChat')
    this.notes = this.doc.getText('relayNotes')
    this.autoTimeoutMs = autoTimeoutMs
    this.provider = null
    this.user = { name: 'Guest', color: '#2f6f62' }
    this.stats = this._freshStats()
    this._timer = setInterval(() => this._tick(), TICK_MS)
    this._probe = setInterval(() => this._probeRtt(), RTT_PROBE_MS)
  }

  _freshStats () {
    return {
      method: '', transport: 'none', status: 'idle', peers: 0, rttMs: null, reconnects: 0,
      bytesIn: 0, bytesOut: 0, tabs: 0, fallbackReason: '', problem: '', websocketDoorOpened: 0,
      dataChannelsOpened: 0, _probeSentAt: 0
    }
  }

  /** Apply a communication config now (same document, new provider). */
  use (cfg) {
    return this._serialized(() => this._use(cfg))
  }

  // Provider switches run one at a time: y-webrtc allows one provider per room name.
  _serialized (task) {
    this._queue = (this._queue || Promise.resolve()).then(task, task)
    return this._queue
  }

  async _use (cfg) {
    await this._stop()
    const door = this.stats.websocketDoorOpened
    this.stats = { ...this._freshStats(), websocketDoorOpened: door }
    this.cfg = cfg
    this.stats.method = cfg.communicationMethod
    this._autoStartedAt = performance.now()
    this._othersSince = 0
    if (cfg.communicationMethod === 'Websocket') return this._startWebsocket()
    if (!window.isSecureContext) {
      const why = 'this page is not on https or localhost, so the browser cannot encrypt ' +
        'WebRTC signaling the way Edrys-Lite does'
      if (cfg.communicationMethod === 'Auto') {
        this.stats.fallbackReason = why
        return this._startWebsocket()
      }
      this.stats.problem = `WebRTC is not available: ${why}. Use WebSocket, or serve with TLS.`
      return this._setStatus('unavailable')
    }
    this._startWebrtc()
    this._lastPeek = -Infinity // Auto peeks at once on the first tick
  }

  setUser (user) {
    this.user = { ...this.user, ...user }
    this._publishPresence()
  }

  _publishPresence () {
    const mode = { webrtc: 'WebRTC', websocket: 'WebSocket' }[this.stats.transport] || '—'
    // y-webrtc clears the local state when it disconnects, so set it whole again
    const local = this.awareness.getLocalState() || {}
    this.awareness.setLocalState({ ...local, user: { ...this.user, mode, state: this.stats.status } })
  }

  _startWebsocket () {
    const provider = new WebsocketProvider(this.cfg.websocketUrl, this.room, this.doc, {
      awareness: this.awareness,
      disableBc: true, // the page shows the server path honestly, no cross-tab shortcut
      WebSocketPolyfill: countingWebSocket(this.stats)
    })
    let opened = 0
    provider.on('status', ({ status }) => {
      if (status === 'connected' && opened++ > 0) this.stats.reconnects++
      this._setStatus(status)
    })
    this.provider = provider
    this.stats.transport = 'websocket'
    this._setStatus('connecting')
  }

  _startWebrtc () {
    let config = this.cfg.webrtcConfig || {}
    if (!config.iceServers) config = { ...config, iceServers: [] } // no third-party STUN unless asked
    const provider = new WebrtcProvider(this.room, this.doc, {
      signaling: this.cfg.signalingServer,
      password: this.cfg.password || DEFAULT_PASSWORD,
      awareness: this.awareness,
      peerOpts: { config }
    })
    let opened = 0
    provider.signalingConns.forEach(conn => conn.on('connect', () => {
      if (opened++ > 0) this.stats.reconnects++
    }))
    // 'peers' fires when a connection is created or closed, 'synced' after a sync
    const greeted = new WeakSet()
    identity().then(me => { this.userId = me.userId; this._emit() })
    provider.on('peers', () => { // Edrys-Lite's 43 and 44 on every new data channel
      if (provider.room) greetNewPeers(this.room, provider.room.webrtcConns.values(), greeted)
      this._tick()
    })
    provider.on('synced', () => this._tick())
    this.provider = provider
    this._rtcBase = { ...rtcTraffic } // the counters are page-wide; show this provider's share
    this.stats.transport = 'webrtc'
    this._setStatus('connecting')
  }

  async _stop () {
    const provider = this.provider
    this.provider = null
    if (!provider) return
    provider.disconnect() // y-webrtc: also closes the signaling socket when unused
    provider.destroy()
    // y-webrtc frees the room name only after its key promise settles
    if (provider.key) await provider.key
    await new Promise(resolve => setTimeout(resolve, 0))
  }

  _fallback (reason) {
    const provider = this.provider
    return this._serialized(async () => {
      if (provider !== this.provider) return // a newer config won meanwhile
      await this._stop()
      this.stats.fallbackReason = reason
      this._startWebsocket()
      this._emit()
    })
  }

  async _peekForWebsocketMembers () {
    const provider = this.provider
    const states = await peekWebsocketRoom(this.cfg.websocketUrl, this.room)
    if (provider !== this.provider || this.stats.transport !== 'webrtc' || this._rtcConnected().length) return
    if (states.length) {
      this._fallback(`${states.length} member(s) are already on the WebSocket server of this classroom`)
    }
  }

  _rtcConns () {
    const room = this.provider && this.provider.room
    return room ? [...room.webrtcConns.values()] : []
  }

  _rtcConnected () {
    return this._rtcConns().filter(conn => conn.connected)
  }

  _setStatus (status) {
    if (this.stats.status === status) return
    this.stats.status = status
    this._publishPresence()
    this._emit()
  }

  _tick () {
    if (!this.provider) return // between two providers
    if (this.stats.transport === 'webrtc') this._tickWebrtc()
    if (this.stats.transport === 'websocket') {
      this.stats.peers = Math.max(0, this.awareness.getStates().size - 1)
    }
    this._emit()
  }

  _tickWebrtc () {
    const conns = this._rtcConns()
    const connected = conns.filter(conn => conn.connected)
    const signaling = this.provider.signalingConns.some(conn => conn.connected)
    this.stats.peers = connected.length
    // y-webrtc syncs tabs of this browser over BroadcastChannel, without a data channel
    this.stats.tabs = this.provider.room ? this.provider.room.bcConns.size : 0
    this.stats.bytesIn = rtcTraffic.bytesIn - this._rtcBase.bytesIn
    this.stats.bytesOut = rtcTraffic.bytesOut - this._rtcBase.bytesOut
    this.stats.dataChannelsOpened = Math.max(this.stats.dataChannelsOpened, connected.length)
    this._setStatus(connected.length ? 'connected' : signaling ? (conns.length ? 'connecting to peers' : 'waiting for peers') : 'connecting')
    if (this.cfg.communicationMethod !== 'Auto' || connected.length) {
      this._othersSince = 0
      return
    }
    const now = performance.now()
    const waited = Math.round(this.autoTimeoutMs / 1000)
    if (now - (this._lastPeek || 0) > PEEK_EVERY_MS) {
      this._lastPeek = now
      this._peekForWebsocketMembers() // members who fell back earlier are on the WebSocket server
    }
    if (!signaling && now - this._autoStartedAt > this.autoTimeoutMs) {
      return this._fallback(`the signaling server did not answer within ${waited} s`)
    }
    if (!conns.length) {
      this._othersSince = 0
      return
    }
    if (!this._othersSince) this._othersSince = now
    if (now - this._othersSince > this.autoTimeoutMs) {
      this._fallback(`${conns.length} other member(s) were found through signaling, but no direct ` +
        `WebRTC connection opened within ${waited} s (no usable network path: firewall, ` +
        'or a STUN/TURN server is needed)')
    }
  }

  async _probeRtt () {
    if (this.stats.transport === 'websocket') {
      const ws = this.provider && this.provider.ws
      if (!ws || ws.readyState !== WebSocket.OPEN) return
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, 0)
      syncProtocol.writeSyncStep1(encoder, this.doc)
      ws.send(encoding.toUint8Array(encoder))
    } else if (this.stats.transport === 'webrtc') {
      const times = await Promise.all(this._rtcConnected().map(conn => peerRtt(conn.peer._pc)))
      const known = times.filter(t => t !== null)
      if (known.length) this.stats.rttMs = Math.round(Math.max(...known))
      this._emit()
    }
  }

  _emit () {
    this.dispatchEvent(new Event('change'))
  }

  debugState () {
    const { _probeSentAt, ...stats } = this.stats
    return { ...stats, room: this.room, userId: this.userId || '', rtcPeerIds: this._rtcConnected().map(c => c.remotePeerId) }
  }
}

async function peerRtt (pc) {
  if (!pc) return null
  const report = await pc.getStats()
  const stats = [...report.values()]
  const transport = stats.find(s => s.type === 'transport' && s.selectedCandidatePairId)
  const pair = transport
    ? report.get(transport.selectedCandidatePairId)
    : stats.find(s => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded')
  const seconds = pair && (pair.currentRoundTripTime ?? (pair.responsesReceived
    ? pair.totalRoundTripTime / pair.responsesReceived : undefined))
  return typeof seconds === 'number' ? seconds * 1000 : null
}
