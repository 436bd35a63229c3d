// Classroom address and communication config, in Edrys-Lite's URL format
// (docs/protocols.md §5.1-5.2):  /?/classroom/<id>[/<owner>[/<hash>]]#comm=<encoded>
import LZString from 'lz-string'

export const METHODS = ['WebRTC', 'Websocket', 'Auto']
const EDRYS_DEFAULT_WEBSOCKET = 'wss://demos.yjs.dev'
const EDRYS_DEFAULT_SIGNALING = 'wss://rooms.deno.dev'
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** This server's own doors: the page talks to the server that served it. */
export function serverDefaults (loc = window.location) {
  const origin = (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host
  return { websocketUrl: origin, signalingServer: [origin] }
}

/** A new classroom id like Edrys-Lite's: 16 characters of [A-Za-z0-9]. */
export function newClassroomId (length = 16) {
  const bytes = crypto.getRandomValues(new Uint8Array(length))
  return Array.from(bytes, b => ID_ALPHABET[b % ID_ALPHABET.length]).join('')
}

/** Accept an id, a `?/classroom/...` route or a whole link; return {id, owner, hash}. */
export function parseClassroom (text) {
  const route = /(?:^|[?/])classroom\/([A-Za-z0-9]+)(?:\/([A-Za-z0-9_-]+))?(?:\/([A-Za-z0-9_-]+))?/.exec(text)
  if (route) return { id: route[1], owner: route[2] || '', hash: route[3] || '' }
  const bare = /^\s*([A-Za-z0-9]+)\s*$/.exec(text)
  return bare ? { id: bare[1], owner: '', hash: '' } : null
}

/** Room name in both modes (= y-websocket doc name = signaling topic). */
export const roomName = classroom => classroom.id + (classroom.hash || '')

/**
 * Edrys-Lite's encoding: `ws` for the default WebSocket server, nothing for the
 * default WebRTC setup, else LZString of JSON with the short keys m, w, c, s.
 * Auto is not an Edrys-Lite method: it is written as WebRTC (what Auto tries
 * first) plus an extra key `a` that Edrys-Lite ignores.
 */
export function encodeComm (cfg) {
  const method = cfg.communicationMethod
  const config = cfg.webrtcConfig && Object.keys(cfg.webrtcConfig).length ? cfg.webrtcConfig : null
  if (method === 'Websocket' && (!cfg.websocketUrl || cfg.websocketUrl === EDRYS_DEFAULT_WEBSOCKET)) {
    return 'ws'
  }
  const signaling = cfg.signalingServer || []
  const defaultSignaling = !signaling.length ||
    (signaling.length === 1 && signaling[0] === EDRYS_DEFAULT_SIGNALING)
  if (method === 'WebRTC' && defaultSignaling && !config) return null
  const short = { m: method === 'Auto' ? 'WebRTC' : method }
  if (cfg.websocketUrl) short.w = cfg.websocketUrl
  if (config) short.c = config
  if (signaling.length) short.s = signaling
  if (method === 'Auto') short.a = 1
  return LZString.compressToEncodedURIComponent(JSON.stringify(short))
}

// A room token rides in the server URL's path, /t/<token> (docs/security.md): stock
// Edrys-Lite appends /<room> to the WebSocket URL and uses the signaling URL verbatim.
const TOKEN_PATH = /^wss?:\/\/[^/?#]+(?:\/[^?#]*)?\/t\/([^/?#]+)\/?$/

/** The token list of a server URL ending in /t/<token>, or ''. */
export const tokenOf = url => (TOKEN_PATH.exec(url || '') || [])[1] || ''

/** What a token says about itself (unverified: only the server can check it), or null. */
export function tokenClaims (token) {
  const payload = (token.split(',')[0] || '').split('.')[2]
  if (!payload) return null
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')))
    return typeof claims.room === 'string' ? claims : null
  } catch (e) { return null }
}

/**
 * Inverse of encodeComm; missing servers fall back to `defaults`, or, when the link names
 * only one server and its URL carries a token, to that URL: both doors take the token.
 */
export function decodeComm (text, defaults) {
  if (text === 'ws') return { ...defaults, communicationMethod: 'Websocket' }
  // URLSearchParams turned '+' into ' ' (Edrys-Lite undoes this the same way)
  const json = LZString.decompressFromEncodedURIComponent(text.replace(/ /g, '+'))
  const short = json ? JSON.parse(json) : null
  if (!short || typeof short !== 'object') throw new Error('unreadable #comm= value')
  let config = short.c || null
  if (typeof config === 'string') config = JSON.parse(config)
  let signaling = short.s
  if (typeof signaling === 'string') signaling = [signaling]
  const tokenUrl = [short.w, ...(signaling || [])].find(tokenOf)
  const method = /^websocket$/i.test(short.m) ? 'Websocket' : short.a ? 'Auto' : 'WebRTC'
  return {
    communicationMethod: method,
    websocketUrl: short.w || tokenUrl || defaults.websocketUrl,
    signalingServer: signaling || (tokenUrl ? [tokenUrl] : defaults.signalingServer),
    webrtcConfig: config
  }
}

/** Read classroom and config from the address bar. */
export function readLocation (loc = window.location) {
  const classroom = parseClassroom(loc.search)
  const comm = new URLSearchParams(loc.hash.slice(1)).get('comm')
  return { classroom, comm }
}

/** The address of a classroom with its config, relative to this page. */
export function classroomHref (classroom, cfg, loc = window.location) {
  const route = ['classroom', classroom.id, classroom.owner, classroom.hash].filter(Boolean).join('/')
  const comm = encodeComm(cfg)
  return `${loc.origin}${loc.pathname}?/${route}` + (comm ? `#comm=${comm}` : '')
}
