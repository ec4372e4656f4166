// Writes a config object as mergekit YAML: block mappings, lists of numbers
// in flow style ([0.2, 0.5, 0.8], as mergekit's examples write gradients),
// strings quoted only when YAML would read them as something else.
const PLAIN = /^[A-Za-z0-9_./@~+-][A-Za-z0-9_./@~+ -]*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|~|[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?)$/i;

function scalar(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  const s = String(v);
  if (s && PLAIN.test(s) && !RESERVED.test(s) && !s.endsWith(' ')) return s;
  return JSON.stringify(s);  // a JSON string is a valid YAML double-quoted scalar
}

const isScalar = (v) => v === null || typeof v !== 'object';

function block(v, indent) {
  const pad = ' '.repeat(indent);
  if (Array.isArray(v)) {
    if (v.every(isScalar)) return ` [${v.map(scalar).join(', ')}]\n`;
    let out = '\n';
    for (const item of v) {
      if (isScalar(item)) { out += `${pad}- ${scalar(item)}\n`; continue; }
      const body = mapping(item, indent + 2);
      out += `${pad}- ${body.slice(indent + 2)}`;
    }
    return out;
  }
  if (v && typeof v === 'object') {
    if (Object.keys(v).length === 0) return ' {}\n';
    return '\n' + mapping(v, indent);
  }
  return ` ${scalar(v)}\n`;
}

function mapping(obj, indent) {
  const pad = ' '.repeat(indent);
  let out = '';
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    out += `${pad}${scalar(k)}:${block(v, indent + 2)}`;
  }
  return out;
}

export function toYaml(config) {
  return mapping(config, 0);
}
