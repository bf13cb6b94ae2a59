// A node:test reporter used by scripts/run-tests.mjs beside `spec`: it writes one JSON line per
// test file it saw (passed, failed, skipped, todo, and the names of failed tests) when the run ends.
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
      f.failures.push(d.name);
    }
  }
  for (const { childSeen, ...f } of files.values()) yield JSON.stringify(f) + '\n';
}
