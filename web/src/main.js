// The classroom page: wires the settings, the live document and the panels.
import {
  serverDefaults, newClassroomId, parseClassroom, roomName, decodeComm,
  readLocation, classroomHref, tokenOf, tokenClaims
} from './comm.js'
import { Session } from './transport.js'
import { bindTextarea } from './notes.js'
import { runCheck } from './check.js'
import { StreamViewer, streamUrl } from './stream.js'
import { TestPattern } from './pattern.js'

const $ = id => document.getElementById(id)
const NAME_KEY = 'edrys-relay-name'
const COLORS = ['#2f6f62', '#3b5b92', '#8a4f7d', '#9a6b1f', '#5c7a2e', '#a34a3c']
const METHOD_HELP = {
  WebRTC: 'Members connect directly; this server only introduces them (signaling). Like Edrys-Lite.',
  Websocket: 'Everything goes through this server, which also keeps the classroom document.',
  Auto: 'WebRTC first; if members are there but no direct connection opens, WebSocket.'
}

const app = { classroom: null, cfg: null, session: null, viewer: null, pattern: null }
window.edrysPage = app // for tests and curious people: app.session.debugState()

function defaultName () {
  return localStorage.getItem(NAME_KEY) || `Guest ${Math.floor(100 + Math.random() * 900)}`
}

function start () {
  const { classroom, comm } = readLocation()
  const defaults = serverDefaults()
  $('join-name').value = defaultName()
  let cfg = { communicationMethod: 'Auto', ...defaults, webrtcConfig: null }
  let warning = ''
  if (comm) {
    try { cfg = decodeComm(comm, defaults) } catch (e) { warning = `Ignored the #comm= value: ${e.message}` }
  }
  app.cfg = cfg
  if (classroom) {
    enter(classroom, $('join-name').value)
    $('comm-error').textContent = warning
    return
  }
  $('join-error').textContent = warning
  $('join').hidden = false
  $('join-form').addEventListener('submit', event => {
    event.preventDefault()
    const text = $('join-classroom').value.trim()
    const picked = text ? parseClassroom(text) : { id: newClassroomId(), owner: '', hash: '' }
    if (!picked) return ($('join-error').textContent = 'That is not a classroom id or link.')
    const linkComm = /#comm=([^&]+)/.exec(text)
    try {
      if (linkComm) app.cfg = decodeComm(decodeURIComponent(linkComm[1]), defaults)
    } catch (e) {
      return ($('join-error').textContent = `The link's #comm= value is unreadable: ${e.message}`)
    }
    enter(picked, $('join-name').value)
  })
  $('create-button').addEventListener('click', () => {
    enter({ id: newClassroomId(), owner: '', hash: '' }, $('join-name').value)
  })
}

function enter (classroom, name) {
  app.classroom = classroom
  const session = new Session(roomName(classroom), {
    autoTimeoutMs: window.edrysAutoTimeoutMs || 10000
  })
  app.session = session
  localStorage.setItem(NAME_KEY, name)
  session.setUser({ name, color: COLORS[session.doc.clientID % COLORS.length] })
  $('join').hidden = true
  $('classroom').hidden = false
  $('room-id').textContent = classroom.id
  $('name').value = name
  $('name').addEventListener('change', () => {
    const value = $('name').value.trim() || defaultName()
    localStorage.setItem(NAME_KEY, value)
    session.setUser({ name: value })
  })
  $('leave').addEventListener('click', () => { window.location.href = window.location.pathname })
  bindTextarea($('notes'), session.notes)
  setupChat(session)
  setupMembers(session)
  setupCommForm()
  setupLink()
  setupCheck()
  setupStream()
  session.addEventListener('change', renderStats)
  $('retry-webrtc').addEventListener('click', applyConfig)
  window.addEventListener('hashchange', onHashChange)
  applyConfig()
}

async function applyConfig () {
  fillCommForm()
  writeLocation()
  await app.session.use(app.cfg)
  renderStats()
}

function writeLocation () {
  const href = classroomHref(app.classroom, app.cfg)
  if (href !== window.location.href) history.replaceState(null, '', href)
  $('link').value = href
}

function onHashChange () {
  const { comm } = readLocation()
  if (!comm) return
  try {
    app.cfg = decodeComm(comm, serverDefaults())
    applyConfig()
  } catch (e) { $('comm-error').textContent = `Ignored the #comm= value: ${e.message}` }
}

// --- communication settings -------------------------------------------------

function fillCommForm () {
  const cfg = app.cfg
  document.querySelector(`input[name=method][value=${cfg.communicationMethod}]`).checked = true
  $('method-help').textContent = METHOD_HELP[cfg.communicationMethod]
  $('ws-url').value = cfg.websocketUrl
  $('sig-url').value = cfg.signalingServer.join(', ')
  $('ice').value = cfg.webrtcConfig ? JSON.stringify(cfg.webrtcConfig) : ''
  fillReadyUrls(cfg)
}

// What to paste into Edrys-Lite's Settings > Communication for this server, and what the
// room token in those URLs (if any) says about itself.
function fillReadyUrls (cfg) {
  $('ready-ws').value = cfg.websocketUrl
  $('ready-sig').value = cfg.signalingServer[0] || ''
  $('ready-stream').value = streamUrl(cfg.websocketUrl)
  const token = tokenOf(cfg.websocketUrl) || tokenOf(cfg.signalingServer[0])
  const claims = token && tokenClaims(token)
  let note = ''
  if (claims) {
    const until = new Date(claims.exp * 1000).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })
    note = `These URLs carry a ${claims.role} token for room ${claims.room}, valid until ${until}. ` +
      'Anyone who has them can join until then.'
    const room = roomName(app.classroom)
    if (claims.room !== room) note += ` It is not for this classroom (${room}): the server will refuse it.`
  } else if (token) {
    note = 'These URLs carry something in the token place (/t/…) that is not a room token.'
  }
  $('token-note').textContent = note
  if (token) $('ready').open = true
}

function readCommForm () {
  const wsUrl = $('ws-url').value.trim().replace(/\/+$/, '')
  const signaling = $('sig-url').value.split(',').map(s => s.trim()).filter(Boolean)
  const isWs = url => /^wss?:\/\/[^\s/]+/.test(url)
  if (!isWs(wsUrl)) throw new Error('The WebSocket server must start with ws:// or wss://')
  if (!signaling.length || !signaling.every(isWs)) throw new Error('Each signaling server must start with ws:// or wss://')
  const iceText = $('ice').value.trim()
  let webrtcConfig = null
  if (iceText) {
    try { webrtcConfig = JSON.parse(iceText) } catch (e) { throw new Error('ICE servers: not valid JSON') }
    if (Array.isArray(webrtcConfig)) webrtcConfig = { iceServers: webrtcConfig }
  }
  const method = document.querySelector('input[name=method]:checked').value
  return { communicationMethod: method, websocketUrl: wsUrl, signalingServer: signaling, webrtcConfig }
}

function setupCommForm () {
  const form = $('comm-form')
  const apply = () => {
    try {
      app.cfg = readCommForm()
      $('comm-error').textContent = ''
      applyConfig()
    } catch (e) { $('comm-error').textContent = e.message }
  }
  form.addEventListener('change', apply)
  form.addEventListener('submit', event => { event.preventDefault(); apply() })
  for (const id of ['ready-ws', 'ready-sig', 'ready-stream']) $(id).addEventListener('focus', () => $(id).select())
}

// --- link -----------------------------------------------------------------------

function setupLink () {
  $('copy-link').addEventListener('click', async () => {
    const link = $('link')
    try {
      await navigator.clipboard.writeText(link.value)
    } catch (e) {
      link.select()
      document.execCommand('copy')
    }
    $('copy-note').textContent = 'Link copied. It opens this classroom with the same settings, here or in Edrys-Lite.'
  })
  $('link').addEventListener('focus', () => $('link').select())
}

// --- members ----------------------------------------------------------------------

function setupMembers (session) {
  const render = () => {
    const list = $('members')
    const states = [...session.awareness.getStates().entries()]
    list.replaceChildren(...states.map(([clientId, state]) => memberItem(clientId, state, session)))
    $('member-count').textContent = String(states.length)
  }
  session.awareness.on('change', render)
  render()
}

function memberItem (clientId, state, session) {
  const user = state.user || {}
  const li = document.createElement('li')
  const dot = document.createElement('span')
  dot.className = 'dot'
  dot.style.background = user.color || '#8c9490'
  const name = document.createElement('span')
  name.className = 'name'
  name.textContent = (user.name || edrysName(session, user.id) || 'Edrys-Lite member') +
    (clientId === session.doc.clientID ? ' (you)' : '')
  const meta = document.createElement('span')
  meta.className = 'meta'
  meta.textContent = [user.mode, user.state].filter(Boolean).join(' · ')
  li.append(dot, name, meta)
  li.dataset.name = user.name || ''
  return li
}

// Edrys-Lite members in WebSocket mode put their peer id into awareness; their
// display name is in the classroom's `users` map (protocols.md §5.3, §5.6).
function edrysName (session, peerId) {
  const entry = peerId && session.doc.getMap('users').get(peerId)
  return entry && typeof entry.get === 'function' ? entry.get('displayName') : ''
}

// --- chat -------------------------------------------------------------------------

function setupChat (session) {
  const render = () => {
    const list = $('chat')
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4
    const items = session.chat.toArray().slice(-200).map(chatItem)
    list.replaceChildren(...items)
    if (atBottom) list.scrollTop = list.scrollHeight
  }
  session.chat.observe(render)
  render()
  $('chat-form').addEventListener('submit', event => {
    event.preventDefault()
    const text = $('chat-input').value.trim()
    if (!text) return
    session.chat.push([{ name: session.user.name, text, time: Date.now() }])
    $('chat-input').value = ''
  })
}

function chatItem (entry) {
  const li = document.createElement('li')
  const who = document.createElement('strong')
  who.textContent = entry.name || '?'
  const when = document.createElement('time')
  const date = new Date(entry.time || 0)
  when.dateTime = date.toISOString()
  when.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  const text = document.createElement('span')
  text.textContent = entry.text || ''
  li.append(who, when, text)
  return li
}

// --- connection panel ------------------------------------------------------------

const formatBytes = n => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`

function renderStats () {
  const s = app.session.stats
  const transport = { webrtc: 'WebRTC (data channels)', websocket: 'WebSocket (this server)', none: '—' }[s.transport]
  $('st-transport').textContent = s.method === 'Auto' ? `Auto → ${transport}` : transport
  $('st-status').textContent = s.status
  $('st-peers').textContent = String(s.peers) +
    (s.tabs ? ` (+ ${s.tabs} tab${s.tabs > 1 ? 's' : ''} of this browser, over BroadcastChannel)` : '')
  $('st-rtt').textContent = s.rttMs === null ? '—' : `${s.rttMs} ms`
  $('st-reconnects').textContent = String(s.reconnects)
  $('st-bytes').textContent = `${formatBytes(s.bytesOut)} / ${formatBytes(s.bytesIn)}`
  $('fallback').hidden = !s.fallbackReason && !s.problem
  $('fallback-note').textContent = s.fallbackReason ? `Switched to WebSocket because ${s.fallbackReason}.` : s.problem
  $('retry-webrtc').hidden = !s.fallbackReason
  const pill = $('status-pill')
  const mode = s.transport === 'webrtc' ? 'WebRTC' : s.transport === 'websocket' ? 'WebSocket' : ''
  pill.textContent = mode ? `${mode} · ${s.status}${s.peers ? ` · ${s.peers} peer${s.peers > 1 ? 's' : ''}` : ''}` : 'not connected'
  pill.dataset.state = s.status === 'connected' ? 'ok' : s.status === 'disconnected' ? 'bad' : 'wait'
}

// --- connectivity check ----------------------------------------------------------

function setupCheck () {
  $('check-button').addEventListener('click', async () => {
    const button = $('check-button')
    button.disabled = true
    button.textContent = 'Checking…'
    $('check-results').replaceChildren()
    $('check-recommendation').textContent = ''
    const result = await runCheck(app.cfg, roomName(app.classroom))
    renderCheck(result)
    button.disabled = false
    button.textContent = 'Run check again'
  })
}

function renderCheck (r) {
  const types = Object.entries(r.candidates).filter(([k]) => k !== 'error')
  const rows = [
    [r.signaling.ok, 'Signaling server', r.signaling.ok ? `answers (${r.signaling.rttMs} ms)` : r.signaling.detail],
    [r.websocket.ok, 'WebSocket server', r.websocket.ok ? 'answers' : r.websocket.detail],
    [types.length > 0, 'ICE candidates', types.length ? types.map(([k, n]) => `${k} ×${n}`).join(', ') : (r.candidates.error || 'none gathered')],
    [r.loopback.ok, 'Data channel (two peers in this page)', r.loopback.ok ? `opened and echoed in ${r.loopback.ms} ms` : r.loopback.detail],
    [r.secure, 'Secure context', r.secure ? 'yes (WebCrypto available)' : 'no: WebRTC signaling cannot be encrypted']
  ]
  $('check-results').replaceChildren(...rows.map(([ok, label, detail]) => {
    const li = document.createElement('li')
    li.className = ok ? 'ok' : 'bad'
    const mark = document.createElement('span')
    mark.className = 'mark'
    mark.textContent = ok ? '✓' : '✗'
    mark.setAttribute('aria-label', ok ? 'works' : 'fails')
    const text = document.createElement('span')
    text.innerHTML = '<strong></strong> '
    text.firstChild.textContent = label
    text.append(detail)
    li.append(mark, text)
    return li
  }))
  $('check-recommendation').textContent = r.recommendation
}

// --- stream -------------------------------------------------------------------------

function setupStream () {
  const img = $('stream-img')
  const viewer = new StreamViewer(img)
  app.viewer = viewer
  const watching = () => !['off', 'disconnected'].includes(viewer.state)
  const render = () => {
    const live = viewer.state === 'live'
    $('stream-empty').hidden = live
    img.hidden = !live
    $('stream-state').textContent = viewer.state === 'off'
      ? `Viewer for the /stream source of classroom ${app.classroom.id}.`
      : `Stream: ${viewer.state}${live ? ` · ${viewer.fps} fps` : ''}`
    $('stream-toggle').textContent = watching() ? 'Stop watching' : 'Watch stream'
  }
  viewer.addEventListener('change', render)
  setInterval(() => viewer.state === 'live' && render(), 1000)
  render()
  $('stream-toggle').addEventListener('click', () => {
    if (watching()) viewer.stop()
    else viewer.start(streamUrl(app.cfg.websocketUrl), app.classroom.id)
  })
  $('stream-test').addEventListener('click', () => {
    if (app.pattern) {
      app.pattern.stop()
      app.pattern = null
      $('stream-test').textContent = 'Send test pattern'
      return
    }
    app.pattern = new TestPattern(streamUrl(app.cfg.websocketUrl), app.classroom.id, message => {
      $('stream-state').textContent = message
    })
    $('stream-test').textContent = 'Stop test pattern'
  })
}

start()
