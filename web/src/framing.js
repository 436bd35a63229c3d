// SimplePeer with the 40-byte chunk framing of Edrys-Lite's y-webrtc fork
// (docs/protocols.md §4.6). The bundler substitutes this module for the
// `simple-peer/simplepeer.min.js` import inside y-webrtc, so every
// data-channel message of the page is framed exactly like Edrys-Lite's.
//
// Header: five signed 64-bit big-endian numbers, then the chunk bytes:
//   txOrd (message counter) | index | length (chunks) | totalSize | chunkSize
import SimplePeer from 'simple-peer/simplepeer.min.js'

export const HEADER_SIZE = 40
export const CHUNK_SIZE = 16384 - 512

/** Counters the connection panel reads (all peers of this page together). */
export const traffic = { bytesOut: 0, bytesIn: 0, messagesOut: 0, messagesIn: 0 }

/** Split one application message into framed chunks. */
export function frameMessage (message, txOrd, chunkSize = CHUNK_SIZE) {
  const length = Math.ceil(message.byteLength / chunkSize)
  const frames = []
  for (let index = 0; index < length; index++) {
    const chunk = message.subarray(index * chunkSize, (index + 1) * chunkSize)
    const frame = new Uint8Array(HEADER_SIZE + chunk.byteLength)
    const view = new DataView(frame.buffer)
    const fields = [txOrd, index, length, message.byteLength, chunk.byteLength]
    fields.forEach((value, i) => view.setBigInt64(i * 8, BigInt(value)))
    frame.set(chunk, HEADER_SIZE)
    frames.push(frame)
  }
  return frames
}

/** Read the header of one framed chunk. */
export function parseFrame (frame) {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const field = i => Number(view.getBigInt64(i * 8))
  return {
    txOrd: field(0),
    index: field(1),
    length: field(2),
    totalSize: field(3),
    chunkSize: field(4),
    chunk: frame.subarray(HEADER_SIZE, HEADER_SIZE + field(4))
  }
}

export default class FramedPeer extends SimplePeer {
  constructor (opts) {
    super(opts)
    this._txOrd = 0
    this._partial = new Map() // txOrd -> Map(index -> chunk)
  }

  send (data) {
    const message = data instanceof Uint8Array ? data : new Uint8Array(data)
    const txOrd = this._txOrd++ // the fork counts empty messages too, but sends no chunk
    if (message.byteLength === 0) return
    traffic.messagesOut++
    for (const frame of frameMessage(message, txOrd)) {
      traffic.bytesOut += frame.byteLength
      super.send(frame)
    }
  }

  // simple-peer calls this for every data-channel message; we hand the
  // reassembled application message to the stream (the 'data' event).
  _onChannelMessage (event) {
    if (this.destroyed) return
    const frame = new Uint8Array(event.data)
    traffic.bytesIn += frame.byteLength
    const packet = parseFrame(frame)
    if (packet.chunkSize === packet.totalSize) return this._deliver(packet.chunk)
    const parts = this._partial.get(packet.txOrd) || new Map()
    this._partial.set(packet.txOrd, parts)
    parts.set(packet.index, packet.chunk)
    if (parts.size < packet.length) return
    this._partial.delete(packet.txOrd)
    const message = new Uint8Array(packet.totalSize)
    let offset = 0
    for (const index of [...parts.keys()].sort((a, b) => a - b)) {
      message.set(parts.get(index), offset)
      offset += parts.get(index).byteLength
    }
    this._deliver(message)
  }

  _deliver (message) {
    traffic.messagesIn++
    this.push(message)
  }
}
