// score.mjs counts each implementation's failures of the required tests of
// http-tests/cache-tests, the way cache-tests.fyi classifies results
// (dependencies honoured, browser-only and CDN-only tests left out).
//
//   node score.mjs SUITE_DIR lbsys.json [more.json ...]
//
// SUITE_DIR is the unpacked npm package http-cache-tests; the published
// results of other caches are read from SUITE_DIR/results.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, ...ours] = process.argv.slice(2)
const suites = (await import(pathToFileURL(path.join(suiteDir, 'tests/index.mjs')))).default
const tests = new Map()
for (const s of suites) for (const t of s.tests) tests.set(t.id, t)

function classify (id, results, seen = new Set()) {
  const t = tests.get(id)
  const r = results[id]
  if (r === undefined || t === undefined) return 'untested'
  if (seen.has(id)) return 'pass'
  seen.add(id)
  for (const dep of t.depends_on || []) {
    if (!['pass', 'yes'].includes(classify(dep, results, seen))) return 'dependency'
  }
  if (Array.isArray(r) && r[0] === 'Setup') return r[1] === 'retry' ? 'retry' : 'setup'
  const kind = t.kind || 'required'
  if (kind === 'required') return r === true ? 'pass' : 'fail'
  if (kind === 'optimal') return r === true ? 'pass' : 'optional-fail'
  return r === true ? 'yes' : 'no'
}

function score (name, results, list) {
  const counts = {}
  const failed = []
  for (const [id, t] of tests) {
    if (t.browser_only || t.cdn_only) continue
    const c = classify(id, results)
    counts[c] = (counts[c] || 0) + 1
    if (list && (c === 'fail' || c === 'setup' || c === 'dependency') && (t.kind || 'required') === 'required') {
      failed.push(`  ${c.padEnd(10)} ${id}: ${JSON.stringify(results[id])}`)
    }
  }
  console.log(`${name.padEnd(24)} required failures ${String(counts.fail || 0).padStart(3)}  setup ${counts.setup || 0}  dependency ${counts.dependency || 0}  pass ${counts.pass || 0}  optional-fail ${counts['optional-fail'] || 0}`)
  for (const f of failed) console.log(f)
}

for (const f of ours) score(path.basename(f, '.json'), JSON.parse(fs.readFileSync(f)), true)
const index = (await import(pathToFileURL(path.join(suiteDir, 'results/index.mjs')))).default
for (const impl of index) {
  if (impl.type !== 'rev-proxy') continue
  score(`${impl.name} ${impl.version || ''}`, JSON.parse(fs.readFileSync(path.join(suiteDir, 'results', impl.file))), false)
}
