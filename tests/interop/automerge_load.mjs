// Load a catalogue exported by `accord catalogue export` with the JavaScript Automerge
// implementation and print its content as canonical JSON (sorted keys), so a test can
// compare it with what the Rust implementation reads from the same bytes.
// usage: AUTOMERGE_PREFIX=DIR node automerge_load.mjs FILE
//   where DIR/node_modules holds @automerge/automerge (scripts/test installs it in
//   target/interop-node).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.AUTOMERGE_PREFIX ?? ".", "package.json"));
const Automerge = require("@automerge/automerge");

function canonical(v) {
  if (v instanceof Uint8Array) return Array.from(v);
  // Automerge 3 returns scalar (non-collaborative) strings as ImmutableString objects.
  if (Automerge.isImmutableString?.(v) || v?.constructor?.name === "ImmutableString") return v.val;
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = canonical(v[k]);
    return out;
  }
  return v;
}

const doc = Automerge.load(new Uint8Array(readFileSync(process.argv[2])));
process.stdout.write(JSON.stringify(canonical(Automerge.toJS(doc))));
