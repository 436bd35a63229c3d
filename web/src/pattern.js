// A tiny /stream source: draws a moving test pattern and sends it as JPEG
// frames, the way an Edrys-Lite station module does (docs/protocols.md §3.4).
const FPS = 5

export class TestPattern {
  constructor (url, roomId, report) {
    this.canvas = Object.assign(document.createElement('canvas'), { width: 320, height: 180 })
    this.ws = new WebSocket(url)
    this.ws.onopen = () => this.ws.send(JSON.stringify({ type: 'register-source', roomId }))
    this.ws.onmessage = event => {
      const msg = JSON.parse(event.data)
      if (msg.type === 'error') report(`Test pattern: ${msg.message}`)
      if (msg.type === 'source-registered') this._timer = setInterval(() => this._send(), 1000 / FPS)
    }
    this.ws.onclose = () => clearInterval(this._timer)
  }

  _send () {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const g = this.canvas.getContext('2d')
    const t = performance.now() / 1000
    const { width, height } = this.canvas
    g.fillStyle = '#1e2b28'
    g.fillRect(0, 0, width, height)
    const bars = ['#e9e4d8', '#d9b44a', '#4aa3a2', '#5b8c3a', '#a05a8c', '#b4493d', '#3b5b92']
    bars.forEach((color, i) => { g.fillStyle = color; g.fillRect(i * width / 7, 0, width / 7 + 1, height * 0.62) })
    g.fillStyle = '#e9e4d8'
    g.fillRect(((t * 60) % (width + 40)) - 40, height * 0.66, 40, 8)
    g.font = '600 20px system-ui, sans-serif'
    g.fillText(new Date().toLocaleTimeString(), 14, height - 18)
    const data = this.canvas.toDataURL('image/jpeg', 0.7)
    this.ws.send(JSON.stringify({ type: 'frame', data }))
  }

  stop () {
    clearInterval(this._timer)
    this.ws.close()
  }
}
