// Run by test_page_modules.py: exercise the page's framing and #comm= modules under Node.
import { frameMessage, parseFrame, CHUNK_SIZE, default as FramedPeer } from '../../web/src/framing.js'
import { encodeComm, decodeComm, parseClassroom, roomName } from '../../web/src/comm.js'
const hex = bytes => Buffer.from(bytes).toString('hex')
const out = {}

// framing: one small message, and a 40 000-byte message in three chunks
const small = frameMessage(new Uint8Array([0, 0, 1, 0]), 7)
out.small = small.map(hex)
const big = new Uint8Array(40000).map((_, i) => i % 251)
const frames = frameMessage(big, 3)
out.bigHeaders = frames.map(f => hex(f.subarray(0, 40)))
out.bigSizes = frames.map(f => f.byteLength)
out.chunkSize = CHUNK_SIZE
// reassembly through the real _onChannelMessage, chunks out of order
const delivered = []
const fake = { destroyed: false, _partial: new Map(), _deliver: m => delivered.push(m) }
for (const f of [frames[2], frames[0], frames[1]]) {
  FramedPeer.prototype._onChannelMessage.call(fake, { data: f.buffer })
}
const edge = new Uint8Array(CHUNK_SIZE + 1).map((_, i) => i % 251)
out.edgeHeaders = frameMessage(edge, 7).map(f => hex(f.subarray(0, 40)))
out.edgeTails = frameMessage(edge, 7).map(f => hex(f.subarray(-2)))
out.reassembled = delivered.length === 1 && Buffer.compare(delivered[0], big) === 0
out.parsed = parseFrame(frames[1])
delete out.parsed.chunk

// #comm=
const d = { websocketUrl: 'ws://self:1', signalingServer: ['ws://self:1'] }
out.docExample = encodeComm({ communicationMethod: 'Websocket', websocketUrl: 'ws://localhost:1234' })
out.wsShort = encodeComm({ communicationMethod: 'Websocket', websocketUrl: 'wss://demos.yjs.dev' })
out.webrtcDefault = encodeComm({ communicationMethod: 'WebRTC', signalingServer: ['wss://rooms.deno.dev'] })
out.decodedWs = decodeComm('ws', d)
out.decodedDoc = decodeComm('N4IgtiBcIOoKYCMDOB7AxgazgFxAGhAHcoilIB6cgG3QEMqALFJbSARgCYBmAFhAF8gA', d)
const auto = { communicationMethod: 'Auto', websocketUrl: 'ws://h:2', signalingServer: ['ws://h:2'], webrtcConfig: { iceTransportPolicy: 'relay' } }
out.autoRoundTrip = decodeComm(encodeComm(auto), d)
out.routes = ['?/classroom/AbCdEfGhIjKlMnOp', 'http://x/?/classroom/Abc/ownerHash/hash1#comm=ws', 'AbC1', 'not an id!']
  .map(t => { const c = parseClassroom(t); return c && roomName(c) })
console.log(JSON.stringify(out))
