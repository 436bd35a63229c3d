// Connectivity check: can WebRTC work from this network?
// 1. the signaling server answers a ping, 2. which ICE candidate types the
// browser gathers with the configured ICE servers, 3. a data channel between
// two peers inside this page opens and carries a message, 4. the WebSocket
// server answers. Then a recommendation in plain words.

const withTimeout = (promise, ms, fallback) =>
  Promise.race([promise, new Promise(resolve => setTimeout(() => resolve(fallback), ms))])

export function pingSignaling (url, timeoutMs = 3000) {
  return withTimeout(new Promise(resolve => {
    const started = performance.now()
    let ws
    try { ws = new WebSocket(url) } catch (e) { return resolve({ ok: false, detail: String(e.message || e) }) }
    ws.onopen = () => ws.send(JSON.stringify({ type: 'ping' }))
    ws.onmessage = event => {
      if (typeof event.data === 'string' && event.data.includes('"pong"')) {
        resolve({ ok: true, rttMs: Math.round(performance.now() - started) })
        ws.close()
      }
    }
    ws.onerror = () => resolve({ ok: false, detail: 'connection failed' })
  }), timeoutMs, { ok: false, detail: `no pong within ${timeoutMs / 1000} s` })
}

export function probeWebsocket (url, room, timeoutMs = 3000) {
  return withTimeout(new Promise(resolve => {
    let ws
    try { ws = new WebSocket(`${url.replace(/\/+$/, '')}/${room}`) } catch (e) { return resolve({ ok: false, detail: String(e.message || e) }) }
    ws.onmessage = () => { resolve({ ok: true }); ws.close() }
    ws.onerror = () => resolve({ ok: false, detail: 'connection failed' })
  }), timeoutMs, { ok: false, detail: `no answer within ${timeoutMs / 1000} s` })
}

export async function gatherCandidates (rtcConfig, timeoutMs = 5000) {
  const pc = new RTCPeerConnection(rtcConfig)
  const types = {}
  pc.createDataChannel('check')
  const done = new Promise(resolve => {
    pc.onicecandidate = event => {
      if (!event.candidate) return resolve()
      const type = event.candidate.type || (/ typ (\w+)/.exec(event.candidate.candidate) || [])[1]
      if (type) types[type] = (types[type] || 0) + 1
    }
  })
  await pc.setLocalDescription(await pc.createOffer())
  await withTimeout(done, timeoutMs)
  pc.close()
  return types
}

export async function loopbackChannel (rtcConfig, timeoutMs = 6000) {
  const a = new RTCPeerConnection(rtcConfig)
  const b = new RTCPeerConnection(rtcConfig)
  a.onicecandidate = e => e.candidate && b.addIceCandidate(e.candidate).catch(() => {})
  b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate).catch(() => {})
  const started = performance.now()
  const channel = a.createDataChannel('loopback')
  const echoed = new Promise(resolve => {
    b.ondatachannel = ({ channel: remote }) => { remote.onmessage = e => remote.send(e.data) }
    channel.onopen = () => channel.send('hello')
    channel.onmessage = () => resolve({ ok: true, ms: Math.round(performance.now() - started) })
  })
  await a.setLocalDescription(await a.createOffer())
  await b.setRemoteDescription(a.localDescription)
  await b.setLocalDescription(await b.createAnswer())
  await a.setRemoteDescription(b.localDescription)
  const result = await withTimeout(echoed, timeoutMs, { ok: false, detail: `no echo within ${timeoutMs / 1000} s` })
  a.close()
  b.close()
  return result
}

export function recommend ({ signaling, candidates, loopback, websocket, secure }) {
  const has = type => (candidates[type] || 0) > 0
  if (!secure) return 'Use WebSocket: this page is not on https or localhost, so the browser cannot encrypt WebRTC signaling.'
  if (!signaling.ok) {
    return websocket.ok
      ? 'Use WebSocket: the signaling server cannot be reached, but the WebSocket server works.'
      : 'Neither server answers: check the server address and your network.'
  }
  if (!loopback.ok) return 'Use WebSocket (or Auto): this browser could not open a WebRTC data channel here.'
  if (has('relay')) return 'WebRTC should work, even across strict firewalls (a TURN relay is available). Auto is a safe choice.'
  if (has('srflx')) return 'WebRTC should work for most members, also across networks (STUN works). Use Auto so that members behind strict firewalls fall back to WebSocket.'
  return 'WebRTC works between members on this local network only (no STUN/TURN candidates). For members elsewhere use WebSocket, or Auto.'
}

export async function runCheck (cfg, room) {
  let rtcConfig = cfg.webrtcConfig || {}
  if (!rtcConfig.iceServers) rtcConfig = { ...rtcConfig, iceServers: [] }
  const secure = window.isSecureContext
  const [signaling, websocket, candidates, loopback] = await Promise.all([
    pingSignaling(cfg.signalingServer[0]),
    probeWebsocket(cfg.websocketUrl, room),
    gatherCandidates(rtcConfig).catch(e => ({ error: String(e.message || e) })),
    loopbackChannel(rtcConfig).catch(e => ({ ok: false, detail: String(e.message || e) }))
  ])
  const result = { signaling, websocket, candidates, loopback, secure }
  return { ...result, recommendation: recommend(result) }
}
