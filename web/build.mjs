// Build the classroom page into src/edrys_relay/web/static/.
//   node build.mjs           write the files
//   node build.mjs --check   fail if the committed files differ from a fresh build
import * as esbuild from 'esbuild'
import { readFile, writeFile, mkdir, readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const outDir = path.join(here, '..', 'src', 'edrys_relay', 'web', 'static')
const check = process.argv.includes('--check')

// y-webrtc imports SimplePeer; Edrys-Lite's fork frames every data-channel
// message, so y-webrtc gets our framing subclass instead (src/framing.js).
const framedPeer = {
  name: 'framed-simple-peer',
  setup (build) {
    build.onResolve({ filter: /^simple-peer\/simplepeer\.min\.js$/ }, args =>
      args.importer.includes(`${path.sep}y-webrtc${path.sep}`)
        ? { path: path.join(here, 'src', 'framing.js') }
        : undefined)
  }
}

async function bundle () {
  const result = await esbuild.build({
    entryPoints: { app: path.join(here, 'src', 'main.js') },
    bundle: true,
    format: 'esm',
    target: ['es2020'],
    minify: true,
    legalComments: 'eof',
    write: false,
    outdir: outDir,
    absWorkingDir: here,
    charset: 'utf8',
    plugins: [framedPeer],
    logLevel: 'warning'
  })
  const files = new Map()
  for (const file of result.outputFiles) files.set(path.basename(file.path), file.contents)
  files.set('app.css', await readFile(path.join(here, 'src', 'app.css')))
  files.set('index.html', await readFile(path.join(here, 'src', 'index.html')))
  return files
}

const files = await bundle()
if (check) {
  const present = (await readdir(outDir).catch(() => [])).sort()
  const stale = []
  for (const [name, contents] of files) {
    const old = await readFile(path.join(outDir, name)).catch(() => null)
    if (!old || Buffer.compare(old, Buffer.from(contents)) !== 0) stale.push(name)
  }
  for (const name of present) if (!files.has(name)) stale.push(`${name} (not built from web/)`)
  if (stale.length) {
    console.error(`web/: the built page is out of date: ${stale.join(', ')}. Run: cd web && npm ci && npm run build`)
    process.exit(1)
  }
  console.log('web/: built page matches the sources')
} else {
  await mkdir(outDir, { recursive: true })
  for (const [name, contents] of files) await writeFile(path.join(outDir, name), contents)
  console.log(`web/: wrote ${[...files.keys()].join(', ')} to ${path.relative(process.cwd(), outDir)}`)
}
