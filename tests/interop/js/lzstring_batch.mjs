// Reads a JSON array of strings on stdin; writes the array of compressToEncodedURIComponent results.
import LZString from 'lz-string'

let input = ''
process.stdin.on('data', (chunk) => { input += chunk })
process.stdin.on('end', () => {
  const texts = JSON.parse(input)
  process.stdout.write(JSON.stringify(texts.map((t) => LZString.compressToEncodedURIComponent(t))))
})
