// Viewer for the /stream relay (docs/protocols.md §3): join the classroom's
// stream room and show each JPEG frame the source sends.
export class StreamViewer extends EventTarget {
  constructor (img) {
    super()
    this.img = img
    this.ws = null
    this.state = 'off'
    this.frames = 0
    this._fpsWindow = []
  }

  start (url, roomId) {
    this.stop()
    const ws = new WebSocket(url)
    this.ws = ws
    this._set('connecting')
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'join-room', roomId }))
      this._set('waiting for a source')
    }
    ws.onmessage = event => this._onMessage(ws, event.data)
    ws.onclose = () => { if (this.ws === ws) this._set('disconnected') }
  }

  stop () {
    if (this.ws) {
      const ws = this.ws
      this.ws = null
      ws.close()
    }
    this.img.removeAttribute('src')
    this._set('off')
  }

  get fps () {
    const now = performance.now()
    this._fpsWindow = this._fpsWindow.filter(t => now - t < 2000)
    return Math.round(this._fpsWindow.length / 2)
  }

  _onMessage (ws, text) {
    let msg
    try { msg = JSON.parse(text) } catch (e) { return }
    if (msg.type === 'frame' && typeof msg.data === 'string' && msg.data.startsWith('data:image/')) {
      this.img.src = msg.data
      this.frames++
      this._fpsWindow.push(performance.now())
      this._set('live')
    } else if (msg.type === 'source-available') {
      this._set('source available')
    } else if (msg.type === 'source-disconnected') {
      this.img.removeAttribute('src')
      this._set('source left')
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong-response', serverTimestamp: msg.timestamp }))
    }
  }

  _set (state) {
    if (this.state === state) return
    this.state = state
    this.dispatchEvent(new Event('change'))
  }
}

/** Derive the /stream door from the WebSocket server address. */
export const streamUrl = websocketUrl => websocketUrl.replace(/\/+$/, '') + '/stream'
