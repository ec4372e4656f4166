// The page: tabs, and the loop form -> YAML -> plan -> problems. The YAML text
// is the one source of truth: a form edit rewrites it, a YAML edit reloads the
// form (through the server's YAML parser), and either one is planned, after a
// short pause, with every problem shown at its line.
import { get, post, el } from './api.js';
import { toYaml } from './yaml.js';
import { ConfigForm } from './form.js';
import { YamlEditor } from './editor.js';
import { ModelsPage } from './models.js';
import { RunsPage } from './runs.js';
import { ComparePage } from './compare.js';

const $ = (id) => document.getElementById(id);
let form, editor, models, runs, compare;
let planTimer = 0, parseTimer = 0, planSeq = 0;

function showTab(name) {
  for (const t of document.querySelectorAll('[role=tab]')) {
    const on = t.id === `tab-${name}`;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (name === 'models' && !models.opened) { models.opened = true; models.open(''); }
  if (name === 'runs') runs.history();
  if (name === 'compare') compare.refresh();
}

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role=tab]')];
  tabs.forEach((t, i) => {
    t.addEventListener('click', () => showTab(t.id.slice(4)));
    t.addEventListener('keydown', (e) => {
      const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (!d) return;
      const next = tabs[(i + d + tabs.length) % tabs.length];
      next.focus();
      showTab(next.id.slice(4));
    });
  });
}

function schedulePlan() {
  clearTimeout(planTimer);
  planTimer = setTimeout(validate, 350);
}

async function validate() {
  const seq = ++planSeq;
  const v = $('validation');
  v.className = 'validation';
  v.textContent = 'Checking…';
  try {
    const r = await post('/api/plan', { yaml: editor.value, options: runOptions() });
    if (seq !== planSeq) return;
    editor.setProblems([]);
    v.className = 'validation ok';
    v.textContent = `Valid: ${r.tensors} tensors, ${r.layers} layers, ${(r.output_bytes / 1e9).toFixed(2)} GB, memory ≤ ${(r.memory_estimate / 1e9).toFixed(2)} GB`;
    $('plan-text').textContent = r.describe;
    $('r-start').disabled = false;
  } catch (e) {
    if (seq !== planSeq) return;
    const problems = e.body?.problems?.length ? e.body.problems : [{ kind: e.body?.kind ?? 'error', message: e.message }];
    editor.setProblems(problems);
    v.className = 'validation bad';
    v.textContent = `${problems.length} problem${problems.length > 1 ? 's' : ''}`;
    $('plan-text').textContent = '';
  }
}

function formChanged(config) {
  editor.value = toYaml(config);
  schedulePlan();
}

function yamlEdited(text) {
  clearTimeout(parseTimer);
  parseTimer = setTimeout(async () => {
    try {
      const r = await post('/api/yaml-to-json', { yaml: text });
      form.load(r.config);
    } catch { /* the plan reports the YAML error at its line */ }
  }, 300);
  schedulePlan();
}

// Run options from options_schema_json (those `llmerge run` takes); only the
// ones changed from their defaults are sent.
let schema;
function buildOptions() {
  const box = $('r-options');
  for (const [name, p] of Object.entries(schema.properties ?? {})) {
    if (!(p['x-commands'] ?? []).includes('run')) continue;
    const id = `o-${name}`;
    let input;
    if (p.type === 'boolean') input = el('input', { id, type: 'checkbox', checked: p.default === true, 'data-default': String(p.default === true) });
    else if (p.enum) input = el('select', { id, 'data-default': String(p.default ?? '') }, p.enum.map((c) => el('option', { value: c, text: c, selected: c === p.default })));
    else input = el('input', { id, placeholder: String(p.default ?? ''), 'data-default': '' });
    input.dataset.option = name;
    input.addEventListener('change', schedulePlan);
    box.append(el('div', { class: 'field' }, el('label', { for: id, text: name }), input,
                  el('p', { class: 'help', text: p.description ?? '' })));
  }
}

function runOptions() {
  const out = {};
  for (const i of $('r-options').querySelectorAll('[data-option]')) {
    const v = i.type === 'checkbox' ? String(i.checked) : i.value;
    if (v !== '' && v !== i.dataset.default) out[i.dataset.option] = v;
  }
  return out;
}

async function startRun() {
  $('r-error').textContent = '';
  try {
    const { id } = await post('/api/runs', { yaml: editor.value, output: $('r-output').value, options: runOptions() });
    showTab('runs');
    runs.follow(id);
  } catch (e) {
    $('r-error').textContent = e.message;
  }
}

async function pickModel(kind, path) {
  const info = await models.inspect(path);
  if (info?.layers?.count) $('f-layers').value = info.layers.count;
  const c = form.toConfig();
  if (kind === 'base') c.base_model = path;
  else {
    c.models = (c.models ?? []).filter((m) => m.model);
    c.models.push({ model: path, parameters: {} });
  }
  form.layers = info?.layers?.count || form.layers;
  form.load(c);
  formChanged(form.toConfig());
  const list = $('known-models');
  list.replaceChildren(...models.known.map((m) => el('option', { value: m })));
  showTab('build');
}

async function main() {
  const [info, methods] = await Promise.all([get('/api/info'), get('/api/methods')]);
  schema = await get('/api/options');
  $('version').textContent = `${info.version} · roots: ${info.roots.join(', ')}`;
  setupTabs();
  editor = new YamlEditor(yamlEdited);
  form = new ConfigForm(methods, formChanged);
  models = new ModelsPage(pickModel);
  runs = new RunsPage({ onload: (rec) => {
    editor.value = rec.yaml;
    yamlEdited(rec.yaml);
    $('r-output').value = rec.output_as_given || rec.output;
    showTab('build');
  } });
  compare = new ComparePage({ known: () => models.known, onconfig: (yaml) => {
    editor.value = yaml;
    yamlEdited(yaml);
    showTab('build');
  } });
  buildOptions();
  $('r-start').addEventListener('click', startRun);
  form.render();
  formChanged(form.toConfig());
  // Known models for the model fields' suggestions: the model folders at the top of each root.
  const top = await get('/api/browse?path=');
  for (const root of top.entries) {
    try {
      const r = await get(`/api/browse?path=${encodeURIComponent(root.path)}`);
      for (const e of r.entries) if (e.model) models.known.push(e.path);
    } catch { /* an unreadable root is listed but not searched */ }
  }
  for (const id of await get('/api/hf-models')) models.known.push(id);
  $('known-models').replaceChildren(...models.known.map((m) => el('option', { value: m })));
  showTab('build');
}

main().catch((e) => { document.body.prepend(el('p', { class: 'error', role: 'alert', text: `llmerge: ${e.message}` })); });
