// A node:test reporter used by scripts/run-tests.mjs beside `spec`: it writes one JSON line per
// test file it saw (passed, failed, skipped, todo, and the names of failed tests with the first
// lines of their errors) when the run ends: the run's last lines then say why, not only what, failed.
// A file that fails to load shows up as one failed test named after the file.
export default async function* summary(source) {
  const files = new Map();
  const of = (file) => {
    const key = file ?? '(unknown file)';
    let f = files.get(key);
    if (!f) files.set(key, (f = { file: key, passed: 0, failed: 0, skipped: 0, todo: 0, failures: [], childSeen: [] }));
    return f;
  };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    const f = of(d.file);
    // Count tests, not suites: an event whose subtests were reported just before it is a parent.
    const parent = f.childSeen[d.nesting + 1] === true;
    f.childSeen[d.nesting + 1] = false;
    f.childSeen[d.nesting] = true;
    if (parent && event.type === 'test:pass') continue;
    if (d.skip !== undefined && d.skip !== false) f.skipped++;
    else if (d.todo !== undefined && d.todo !== false) f.todo++;
    else if (event.type === 'test:pass') f.passed++;
    else {
      f.failed++;
      f.failures.push(`${d.name}: ${reason(d.details?.error)}`);
    }
  }
  for (const { childSeen, ...f } of files.values()) yield JSON.stringify(f) + '\n';
}

/** The first lines of a failed test's error (node:test wraps a thrown error in its `cause`). */
function reason(error) {
  const e = error?.cause ?? error;
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const short = lines.slice(0, 8).join(' | ');
  return short.length > 600 ? `${short.slice(0, 600)}...` : short;
}
