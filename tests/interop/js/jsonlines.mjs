// The JSON-lines loop every agent here runs (driven by tests/interop/node_agent.py): one request
// {"id", "cmd", ...} per stdin line, one reply {"id", "ok"} or {"id", "error"} per stdout line.
import readline from 'node:readline'

export function serveCommands (commands, onClose) {
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    let request
    try {
      request = JSON.parse(line)
      const handler = commands[request.cmd]
      if (!handler) throw new Error(`unknown command ${request.cmd}`)
      process.stdout.write(JSON.stringify({ id: request.id, ok: handler(request) }) + '\n')
    } catch (error) {
      process.stdout.write(JSON.stringify({ id: request?.id ?? null, error: String(error) }) + '\n')
    }
  })
  rl.on('close', onClose)
}
