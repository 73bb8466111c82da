"""Rebuild the vendored wpt WebVTT file-parsing cases from ``source/*.test`` (run with Node.js).

Each ``source/<name>.test`` is a verbatim copy of ``webvtt/parsing/file-parsing/support/<name>.test``
from web-platform-tests (see LICENSE.md here).  This script writes

* ``<name>.vtt``: the WebVTT file exactly as wpt's own build step writes it (the part after ``===``,
  backslash escapes decoded with Python's ``unicode_escape``);
* ``expected.json``: the browsers' expectations, recorded by running each test's JavaScript
  assertions under Node.js against stand-in objects that remember which property (``cues[3].align``)
  was compared with which value.  The tests in ``tests/test_webvtt_conformance.py`` check
  ``vidtrans.captions.parse_vtt`` against these records; Node.js is only needed to rebuild them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent

RECORDER = r"""
const PATH = Symbol('path');
function run(js, lengths, firstPass) {
  const checks = [];
  const mk = (path) => new Proxy(function () {}, {
    get(t, p) {
      if (p === PATH) return path;
      if (typeof p === 'symbol') return undefined;
      if (p === 'length') { const n = new Number(lengths[path + '.length'] || 0); n[PATH] = path + '.length'; return n; }
      return mk(/^\d+$/.test(p) ? `${path}[${p}]` : `${path}.${p}`);
    },
  });
  const pathOf = (v) => (v !== null && (typeof v === 'object' || typeof v === 'function') ? v[PATH] : undefined);
  const plain = (v) => (v instanceof Number ? v.valueOf() : v);
  const sandbox = {
    cues: mk('cues'), document: mk('document'), CSSRule: { STYLE_RULE: 1 }, Array, Number,
    assert_equals(a, b) {
      const pa = pathOf(a), pb = pathOf(b);
      if (pa === undefined) return;
      if (pb !== undefined && !(b instanceof Number)) checks.push(['same', pa, pb]);
      else checks.push(['eq', pa, plain(b)]);
    },
    assert_not_equals(a, b) { const pa = pathOf(a), pb = pathOf(b); if (pa !== undefined && pb !== undefined) checks.push(['not_same', pa, pb]); },
    assert_true(a) { const pa = pathOf(a); if (pa !== undefined) checks.push(['eq', pa, true]); },
    assert_false(a) { const pa = pathOf(a); if (pa !== undefined) checks.push(['eq', pa, false]); },
  };
  try { require('vm').runInNewContext(js, sandbox); } catch (e) { if (!firstPass) throw e; }
  return checks;
}
const tests = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {};
for (const [name, js] of Object.entries(tests)) {
  const lengths = {};
  // first pass: only the lengths (asserted first) are known; then run again with them
  for (const [op, path, value] of run(js, {}, true)) if (op === 'eq' && path.endsWith('.length')) lengths[path] = value;
  out[name] = run(js, lengths);
}
process.stdout.write(JSON.stringify(out));
"""

#: wpt's regions-id test compares region1 four times (a typo upstream: each check is meant for
#: region1..region4, which is what the REGION blocks and the spec give); corrected here
FIXES = {
    "regions-id": [
        (f"var region{k} = cues[{k - 1}].region;\nassert_equals(region1.lines",
         f"var region{k} = cues[{k - 1}].region;\nassert_equals(region{k}.lines")
        for k in (2, 3, 4)
    ],
}




def _renumber_invalid_regions(vtt: str) -> str:
    """wpt's regions-regionanchor/-viewportanchor give all 14 invalid REGION blocks ``id:6`` while the
    cues refer to regions 7-20 and the assertions read those regions' anchors (a copy-paste slip
    upstream: as written, cues 7-20 have no region and the browser test itself throws); renumbered."""
    head, tail = vtt.split("NOTE invalid\n", 1)
    parts = tail.split("REGION\nid:6\n")
    out = parts[0]
    for k, part in enumerate(parts[1:]):
        out += f"REGION\nid:{7 + k}\n" + part
    return head + "NOTE invalid\n" + out


#: corrections applied to the WebVTT part of a source file before it is written
VTT_FIXES = {"regions-regionanchor": _renumber_invalid_regions, "regions-viewportanchor": _renumber_invalid_regions}


def main() -> None:
    tests: dict[str, dict] = {}
    js_of: dict[str, str] = {}
    for src in sorted((HERE / "source").glob("*.test")):
        text = src.read_text(encoding="utf-8")
        header, body = text.split("\n\n", 1)
        js, vtt = body.split("===\n", 1)
        for old, new in FIXES.get(src.stem, []):
            assert old in js, (src.stem, old)
            js = js.replace(old, new)
        if src.stem in VTT_FIXES:
            vtt = VTT_FIXES[src.stem](vtt)
        decoded = bytes(vtt, "utf-8").decode("unicode_escape")
        (HERE / f"{src.stem}.vtt").write_bytes(decoded.encode("utf-8"))
        js_of[src.stem] = js
        tests[src.stem] = {"title": header.split("\n", 1)[0]}
    recorded = json.loads(
        subprocess.run(["node", "-e", RECORDER], input=json.dumps(js_of), capture_output=True, text=True, check=True).stdout
    )
    for name, checks in recorded.items():
        tests[name]["checks"] = checks
    meta = json.loads((HERE / "blocks.json").read_text())
    for name in tests:
        tests[name].update(meta[name])
    (HERE / "expected.json").write_text(json.dumps(tests, indent=1, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
