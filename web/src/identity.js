// Edrys-Lite's peer identity on WebRTC data channels (docs/protocols.md §5.4-5.5).
// After a data channel opens, Edrys-Lite expects message 43 (the user id) and
// then 44 (public key, signed challenge); a peer without a valid 44 within
// 30 s is disconnected. The key pair is made once per page load; the private
// key cannot be exported. WebCrypto exists only in secure contexts, which
// WebRTC mode requires anyway.
import * as encoding from 'lib0/encoding'
import { toBase64 } from 'lib0/buffer'
import { newClassroomId } from './comm.js'

export const USER_ID = 43
export const HANDSHAKE = 44
const WINDOW_MS = 30000
const KEY = { name: 'ECDSA', namedCurve: 'P-256' }
const SIGNATURE = { name: 'ECDSA', hash: 'SHA-256' }

let pageIdentity = null

/** This page's identity: {publicKey, userId, privateKey}; userId = `<88-char key>_<6 alnum>`. */
export function identity () {
  pageIdentity = pageIdentity || (async () => {
    const { publicKey, privateKey } = await crypto.subtle.generateKey(KEY, false, ['sign'])
    const raw = toBase64(new Uint8Array(await crypto.subtle.exportKey('raw', publicKey)))
    return { publicKey: raw, userId: `${raw}_${newClassroomId(6)}`, privateKey }
  })()
  return pageIdentity
}

/** Messages 43 and 44 for `room`, signing "<room>:<floor(now / 30 s)>". */
export async function handshakeMessages (room, nowMs = Date.now()) {
  const me = await identity()
  const challenge = new TextEncoder().encode(`${room}:${Math.floor(nowMs / WINDOW_MS)}`)
  const signature = new Uint8Array(await crypto.subtle.sign(SIGNATURE, me.privateKey, challenge))
  const user = encoding.createEncoder()
  encoding.writeVarUint(user, USER_ID)
  encoding.writeVarString(user, me.userId)
  const proof = encoding.createEncoder()
  encoding.writeVarUint(proof, HANDSHAKE)
  encoding.writeVarString(proof, me.publicKey)
  encoding.writeVarString(proof, toBase64(signature))
  return [encoding.toUint8Array(user), encoding.toUint8Array(proof)]
}

/** Send 43 then 44 once on each new data channel of a y-webrtc room. */
export function greetNewPeers (room, conns, greeted) {
  for (const conn of conns) {
    const peer = conn.peer
    if (greeted.has(peer)) continue
    greeted.add(peer)
    const greet = () => handshakeMessages(room).then(messages => {
      if (!peer.destroyed && peer.connected) messages.forEach(message => peer.send(message))
    }, error => console.error('Edrys handshake failed', error))
    if (peer.connected) greet()
    else peer.once('connect', greet)
  }
}
