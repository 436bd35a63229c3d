// Runs y-webrtc's own src/crypto.js (npm y-webrtc, pinned in package.json) for the Python
// interop tests (tests/interop/test_webrtc_crypto_js.py).
// stdin: JSON array of requests; stdout: JSON array of results, in the same order.
//   {op: 'key', password, room}                    -> {keyHex}
//   {op: 'encrypt', password, room, anyHex, ivHex?} -> {b64}   (plaintext = readAny(anyHex))
//   {op: 'decrypt', password, room, b64}            -> {anyHex} (writeAny of the decrypted value)
// ivHex pins the IV (by stubbing crypto.getRandomValues once) so results are reproducible.
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as cryptoutils from '../node_modules/y-webrtc/src/crypto.js'

const fromHex = (hex) => new Uint8Array(Buffer.from(hex, 'hex'))
const toHex = (u8) => Buffer.from(u8).toString('hex')
const toB64 = (u8) => Buffer.from(u8).toString('base64')
const fromB64 = (s) => new Uint8Array(Buffer.from(s, 'base64'))

const readStdin = async () => {
  const parts = []
  for await (const chunk of process.stdin) parts.push(chunk)
  return Buffer.concat(parts).toString('utf8')
}

const handle = async (req) => {
  const key = await cryptoutils.deriveKey(req.password, req.room)
  if (req.op === 'key') {
    return { keyHex: toHex(new Uint8Array(await crypto.subtle.exportKey('raw', key))) }
  }
  if (req.op === 'encrypt') {
    const value = decoding.readAny(decoding.createDecoder(fromHex(req.anyHex)))
    const original = crypto.getRandomValues
    if (req.ivHex) {
      crypto.getRandomValues = (arr) => { arr.set(fromHex(req.ivHex)); return arr }
    }
    try {
      return { b64: toB64(await cryptoutils.encryptJson(value, key)) }
    } finally {
      crypto.getRandomValues = original
    }
  }
  if (req.op === 'decrypt') {
    try {
      const value = await cryptoutils.decryptJson(fromB64(req.b64), key)
      const e = encoding.createEncoder()
      encoding.writeAny(e, value)
      return { anyHex: toHex(encoding.toUint8Array(e)) }
    } catch (err) {
      return { error: String(err) }
    }
  }
  return { error: 'unknown op' }
}

const requests = JSON.parse(await readStdin())
const results = []
for (const req of requests) results.push(await handle(req))
process.stdout.write(JSON.stringify(results))
