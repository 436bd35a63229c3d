// The JSON-lines loop every agent here runs, and the commands every Yjs provider agent offers (driven by tests/interop/node_agent.py): one request
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

// Commands on a client {doc, provider} found by name: the map 'm' as JSON, and awareness.
export function providerCommands (get) {
  return {
    map_set_json: ({ name, key, json }) => { get(name).doc.getMap('m').set(key, JSON.parse(json)); return true },
    map_get_json: ({ name, key }) => {
      const value = get(name).doc.getMap('m').get(key)
      return value === undefined ? null : JSON.stringify(value)
    },
    map_keys: ({ name }) => Array.from(get(name).doc.getMap('m').keys()).sort(),
    awareness_set: ({ name, state }) => { get(name).provider.awareness.setLocalState(state); return get(name).doc.clientID },
    awareness_states: ({ name }) => Array.from(get(name).provider.awareness.getStates().entries()),
  }
}
