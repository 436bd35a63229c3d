// Apply a Yjs update file with the stock yjs library and print what a client would see:
// node js/apply_update.mjs FILE  ->  {"text": <Y.Text "t">, "map": {key: JSON.stringify(value)}}
import { readFileSync } from 'node:fs'
import * as Y from 'yjs'

const doc = new Y.Doc()
Y.applyUpdate(doc, new Uint8Array(readFileSync(process.argv[2])))
const map = {}
doc.getMap('m').forEach((value, key) => { map[key] = JSON.stringify(value) })
const pending = doc.store.pendingStructs !== null || doc.store.pendingDs !== null
process.stdout.write(JSON.stringify({ text: doc.getText('t').toString(), map, pending }) + '\n')
