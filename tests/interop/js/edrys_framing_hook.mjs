// Module resolve hook for ywebrtc_agent.mjs: y-webrtc's `simple-peer/simplepeer.min.js` becomes
// web/src/framing.js (the classroom page's FramedPeer), whose own import of SimplePeer resolves
// from tests/interop like y-webrtc's would.
const SIMPLE_PEER = 'simple-peer/simplepeer.min.js'
const FRAMING = new URL('../../../web/src/framing.js', import.meta.url).href
const HERE = import.meta.url

export async function resolve (specifier, context, nextResolve) {
  if (specifier === SIMPLE_PEER && context.parentURL === FRAMING) {
    return nextResolve(specifier, { ...context, parentURL: HERE })
  }
  if (specifier === SIMPLE_PEER && context.parentURL?.includes('/node_modules/y-webrtc/')) {
    return { url: FRAMING, shortCircuit: true }
  }
  return nextResolve(specifier, context)
}
