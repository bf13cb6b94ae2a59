/**
 * A parser for the YAML subset the deployment files use (docker-compose.yml, deploy/compose/*.yml,
 * deploy/k8s/**.yaml), so that tests read them without a YAML library: block maps and sequences by
 * indentation (a map may start on a sequence item's dash line, `- name: x`), `#` comments, plain,
 * single- and double-quoted scalars, and flow collections written as JSON (["a", "b"], {}).
 *
 * Plain scalars are typed as in YAML 1.2's core schema: integers, decimals, true/false, null.
 * A plain scalar that YAML 1.1 parsers (go-yaml v2, which kubectl uses) read differently is an
 * error, so the files mean the same to every parser: yes/no/on/off/y/n (booleans in 1.1), 0644
 * (octal in 1.1), 7001:7001 (a base-60 number in 1.1). Quote them. Anything else unsupported
 * (anchors, tags, block scalars, multiple documents) throws as well.
 */

export type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  no: number;
}

function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote !== null) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"') i++;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function plain(text: string, no: number): Yaml {
  if (/^(?:null|Null|NULL|~)$/.test(text)) return null;
  if (/^(?:true|True|TRUE)$/.test(text)) return true;
  if (/^(?:false|False|FALSE)$/.test(text)) return false;
  if (/^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/.test(text)) {
    throw new Error(`line ${no}: ${text} is a boolean in YAML 1.1 and a string in YAML 1.2; quote it`);
  }
  if (/^[-+]?0[0-9_]+$/.test(text)) throw new Error(`line ${no}: ${text} is octal in YAML 1.1 and decimal in YAML 1.2; write it in decimal or quote it`);
  if (/^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/.test(text)) {
    throw new Error(`line ${no}: ${text} is a base-60 number in YAML 1.1; quote it`);
  }
  if (/^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:$|[Tt\s])/.test(text)) throw new Error(`line ${no}: ${text} is a timestamp in YAML 1.1; quote it`);
  if (/^[-+]?(?:0|[1-9][0-9]*)$/.test(text)) {
    const n = Number(text);
    if (!Number.isSafeInteger(n)) throw new Error(`line ${no}: integer ${text} is out of range`);
    return n;
  }
  if (/^[-+]?(?:0|[1-9][0-9]*)\.[0-9]+$/.test(text)) return Number(text);
  if (/^[-+]?(?:\.[0-9]|[0-9][0-9_]*(?:\.[0-9]*)?[eE]|[0-9]+_|0[xob]|\.(?:inf|nan))/i.test(text)) {
    throw new Error(`line ${no}: unsupported number form ${text}; quote it if it is a string`);
  }
  return text;
}

function scalar(raw: string, no: number): Yaml {
  const text = raw.trim();
  if (text === '') return null;
  if (text.startsWith('[') || text.startsWith('{') || text.startsWith('"')) {
    try {
      return JSON.parse(text) as Yaml;
    } catch {
      throw new Error(`line ${no}: unsupported flow value ${text}`);
    }
  }
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new Error(`line ${no}: unterminated quote`);
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[&*!|>%@`]/.test(text)) throw new Error(`line ${no}: unsupported YAML feature in ${text}`);
  return plain(text, no);
}

/** True when a sequence item's text (after the dash) starts a map: `key: value` or `key:`. */
function startsMap(rest: string): boolean {
  return /^(?:"[^"]*"|'[^']*'|[^"'[{\s][^:]*?):(?:\s|$)/.test(rest);
}

export function parseYaml(source: string): Yaml {
  const lines: Line[] = [];
  let documents = 0;
  source.split('\n').forEach((raw, i) => {
    if (raw.includes('\t')) throw new Error(`line ${i + 1}: tab`);
    const text = stripComment(raw).trimEnd();
    if (text.trim() === '---') {
      if (lines.length > 0 || ++documents > 1) throw new Error(`line ${i + 1}: one document per file`);
      return;
    }
    if (text.trim() === '') return;
    lines.push({ indent: text.length - text.trimStart().length, text: text.trim(), no: i + 1 });
  });
  let pos = 0;
  const block = (indent: number): Yaml => {
    const first = lines[pos];
    if (first === undefined || first.indent < indent) return null;
    if (first.text.startsWith('- ') || first.text === '-') {
      const seq: Yaml[] = [];
      while (pos < lines.length && lines[pos]!.indent === first.indent && (lines[pos]!.text.startsWith('- ') || lines[pos]!.text === '-')) {
        const item = lines[pos]!;
        pos++;
        const rest = item.text.slice(1).trim();
        if (rest === '') {
          seq.push(block(item.indent + 1));
        } else if (startsMap(rest)) {
          // A map whose first key is on the dash line: that key's column is the map's indentation.
          const column = item.indent + item.text.length - rest.length;
          pos--;
          lines[pos] = { indent: column, text: rest, no: item.no };
          seq.push(block(column));
        } else {
          seq.push(scalar(rest, item.no));
        }
      }
      return seq;
    }
    const map: { [key: string]: Yaml } = {};
    while (pos < lines.length && lines[pos]!.indent === first.indent) {
      const line = lines[pos]!;
      if (line.text.startsWith('- ')) throw new Error(`line ${line.no}: a sequence item where a "key: value" was expected`);
      const m = /^("[^"]*"|'[^']*'|[^:]+?):(\s+(.*))?$/.exec(line.text);
      if (m === null) throw new Error(`line ${line.no}: expected "key: value", got ${line.text}`);
      const key = /^["']/.test(m[1]!) ? String(scalar(m[1]!, line.no)) : m[1]!;
      if (key in map) throw new Error(`line ${line.no}: duplicate key ${key}`);
      pos++;
      const value = m[3];
      map[key] = value !== undefined && value !== '' ? scalar(value, line.no) : lines[pos] !== undefined && lines[pos]!.indent > line.indent ? block(lines[pos]!.indent) : null;
    }
    if (pos < lines.length && lines[pos]!.indent > first.indent) throw new Error(`line ${lines[pos]!.no}: bad indentation`);
    return map;
  };
  const doc = block(0);
  if (pos !== lines.length) throw new Error(`line ${lines[pos]!.no}: unexpected indentation`);
  return doc;
}

/**
 * Compose-style variable substitution, before parsing: `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `$VAR` and `$$` (a literal `$`). As in
 * Compose, an unset `${VAR:?error}` is an error; an unset plain `${VAR}` is too, here, so a test
 * notices a variable it did not set.
 */
export function substitute(source: string, env: Readonly<Record<string, string>>): string {
  return source.replace(/\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (whole, braced?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
    if (whole === '$$') return '$';
    const name = (braced ?? bare)!;
    const value = env[name];
    const unset = value === undefined || (colon === ':' && value === '');
    if (op === '-') return unset ? arg! : value!;
    if (unset) throw new Error(op === '?' ? `${name}: ${arg}` : `variable ${name} is not set`);
    return value!;
  });
}
