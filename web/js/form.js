// The config form. Its state is a mergekit config object; the form shows the
// fields the chosen method takes (methods_json: per-model and global
// parameters, whether a base model is used) and keeps every other key as it
// came from the YAML, so form -> YAML -> form loses nothing but comments.
import { el } from './api.js';
import { curveEditor } from './curve.js';

const KNOWN = ['merge_method', 'base_model', 'models', 'parameters', 'dtype'];
const FILTERS = ['self_attn', 'mlp'];

export class ConfigForm {
  constructor(methods, onchange) {
    this.methods = methods;
    this.onchange = onchange;
    this.config = { merge_method: 'linear', models: [{ model: '', parameters: {} }, { model: '', parameters: {} }] };
    this.layers = 32;
    this.$ = (id) => document.getElementById(id);
    const select = this.$('f-method');
    for (const m of methods) select.append(el('option', { value: m.name, text: `${m.name} — ${m.pretty_name}` }));
    select.addEventListener('change', () => this.setMethod(select.value));
    this.$('f-base').addEventListener('input', (e) => { this.set('base_model', e.target.value || undefined); });
    this.$('f-dtype').addEventListener('change', (e) => { this.set('dtype', e.target.value || undefined); });
    this.$('f-layers').addEventListener('change', (e) => {
      this.layers = Math.max(1, Math.min(1024, +e.target.value || 1));
      for (const c of document.querySelectorAll('#form .curve')) c.setLayers?.(this.layers);
    });
    this.$('f-add-model').addEventListener('click', () => {
      (this.config.models ??= []).push({ model: '', parameters: {} });
      this.render(); this.changed();
      this.$('f-model-rows').querySelector('.model-row:last-child input')?.focus();
    });
  }

  method() {
    return this.methods.find((m) => m.name === this.config.merge_method);
  }

  set(key, value) {
    if (value === undefined) delete this.config[key]; else this.config[key] = value;
    this.changed();
  }

  changed() { this.onchange(this.toConfig()); }

  setMethod(name) {
    this.config.merge_method = name;
    const m = this.method();
    // Keep only what the new method takes.
    if (m) {
      const per = new Set(m.parameters.filter((p) => p.scope === 'per_model').map((p) => p.name));
      const glob = new Set(m.parameters.filter((p) => p.scope === 'global').map((p) => p.name));
      for (const row of this.config.models ?? []) {
        for (const k of Object.keys(row.parameters ?? {})) if (!per.has(k)) delete row.parameters[k];
      }
      for (const k of Object.keys(this.config.parameters ?? {})) if (!glob.has(k)) delete this.config.parameters[k];
      if (this.config.parameters && !Object.keys(this.config.parameters).length) delete this.config.parameters;
      if (m.base_model === 'none') delete this.config.base_model;
    }
    this.render();
    this.changed();
  }

  // The config in mergekit's key order, extra keys after.
  toConfig() {
    const c = {};
    for (const k of KNOWN) if (this.config[k] !== undefined) c[k] = this.config[k];
    if (c.models) {
      c.models = c.models.map((r) => {
        const out = { ...r };
        if (out.parameters && !Object.keys(out.parameters).length) delete out.parameters;
        return out;
      });
    }
    for (const [k, v] of Object.entries(this.config)) if (!KNOWN.includes(k)) c[k] = v;
    return c;
  }

  load(config) {
    this.config = config && typeof config === 'object' && !Array.isArray(config) ? structuredClone(config) : {};
    for (const row of this.config.models ?? []) if (row && typeof row === 'object') row.parameters ??= {};
    this.render();
  }

  render() {
    const c = this.config, m = this.method();
    this.$('f-method').value = c.merge_method ?? '';
    this.$('f-method-help').textContent = m ? `${m.description} (${m.reference || 'mergekit'})` :
      `unknown method '${c.merge_method ?? ''}'`;
    this.$('f-base-field').hidden = m?.base_model === 'none' && !c.base_model;
    const base = this.$('f-base');
    if (document.activeElement !== base) base.value = typeof c.base_model === 'string' ? c.base_model : '';
    base.required = m?.base_model === 'required';
    this.$('f-dtype').value = c.dtype ?? '';
    this.$('f-layers').value = this.layers;
    const note = this.$('f-note');
    const slices = Array.isArray(c.slices);
    note.hidden = !slices;
    note.textContent = slices ? 'This config lists slices: edit them in the YAML (the form edits models: configs).' : '';
    this.$('f-models').hidden = slices;

    const perModel = (m?.parameters ?? []).filter((p) => p.scope === 'per_model');
    const rows = this.$('f-model-rows');
    rows.replaceChildren();
    (Array.isArray(c.models) ? c.models : []).forEach((row, i) => {
      if (!row || typeof row !== 'object') return;
      const id = `f-model-${i}`;
      const input = el('input', { id, value: typeof row.model === 'string' ? row.model : '', list: 'known-models',
                                  autocomplete: 'off', spellcheck: 'false' });
      input.addEventListener('input', () => { row.model = input.value; this.changed(); });
      const remove = el('button', { type: 'button', text: 'Remove', 'aria-label': `Remove model ${i + 1}`,
                                    onclick: () => { c.models.splice(i, 1); this.render(); this.changed(); } });
      rows.append(el('div', { class: 'model-row' },
        el('div', { class: 'head' }, el('div', { class: 'field' }, el('label', { for: id, text: `Model ${i + 1}` }), input), remove),
        this.params(perModel, row.parameters ??= {}, `m${i}`, `model ${i + 1}`)));
    });
    const globals = (m?.parameters ?? []).filter((p) => p.scope === 'global');
    this.$('f-globals').hidden = !globals.length;
    const g = this.$('f-global-rows');
    g.replaceChildren(this.params(globals, this.config.parameters ?? {}, 'g', 'global', (obj) => {
      if (Object.keys(obj).length) this.config.parameters = obj; else delete this.config.parameters;
    }));
  }

  // Inputs for `specs` editing the object `target` (a parameters mapping).
  params(specs, target, prefix, where, attach = () => {}) {
    const box = el('div', { class: 'params' });
    for (const p of specs) {
      const id = `f-${prefix}-${p.name}`;
      const raw = target[p.name];
      const commit = (v) => {
        if (v === undefined) delete target[p.name]; else target[p.name] = v;
        attach(target);
        this.changed();
      };
      const help = `${p.help}${p.default != null ? ` (default ${p.default})` : p.required ? ' (required)' : ''}`;
      if (p.type === 'boolean') {
        const cb = el('input', { id, type: 'checkbox', checked: raw ?? p.default ?? false });
        cb.addEventListener('change', () => commit(cb.checked));
        box.append(el('div', { class: 'param' }, el('div', { class: 'line' }, cb, el('label', { for: id, text: p.name })),
                      el('p', { class: 'help', text: help })));
        continue;
      }
      const isCurve = Array.isArray(raw);
      const wrap = el('div', { class: 'param' });
      const line = el('div', { class: 'line' });
      const label = el('label', { for: id, text: p.name });
      if (!isCurve) {
        const input = el('input', { id, type: 'number', step: 'any', value: typeof raw === 'number' ? raw : '',
                                    placeholder: p.default != null ? String(p.default) : 'required',
                                    min: p.min ?? null, max: p.max ?? null, 'aria-describedby': `${id}-help` });
        input.addEventListener('input', () => commit(input.value === '' ? undefined : Number(input.value)));
        line.append(input);
      }
      const toggle = el('button', { type: 'button', class: 'curve-toggle', 'aria-pressed': String(isCurve),
                                    text: isCurve ? 'Single value' : 'Per layer',
                                    'aria-label': `${isCurve ? 'Single value' : 'Per-layer curve'} for ${p.name} (${where})` });
      toggle.addEventListener('click', () => {
        if (isCurve) {
          const first = raw.find((e) => typeof e === 'number') ?? raw[raw.length - 1]?.value;
          commit(typeof first === 'number' ? first : Array.isArray(first) ? first[0] : undefined);
        } else {
          const v = typeof raw === 'number' ? raw : p.default ?? 0.5;
          commit([v, v]);
        }
        this.render();
      });
      line.append(toggle);
      wrap.append(label, line, el('p', { class: 'help', id: `${id}-help`, text: help }));
      box.append(wrap);
      if (isCurve) box.append(this.curves(p, raw, commit));
    }
    return box;
  }

  // One curve per filter: a plain list is one curve for every tensor; a list
  // of {filter, value} entries is one per filter, the entry without a filter
  // for the rest (mergekit's rule: the first matching filter wins).
  curves(p, raw, commit) {
    const filtered = raw.some((e) => e && typeof e === 'object');
    const entries = filtered ? raw : [{ value: raw }];
    const box = el('div', { class: 'curve' });
    entries.forEach((entry, i) => {
      const name = `${p.name}${entry.filter ? ` (${entry.filter})` : filtered ? ' (other tensors)' : ''}`;
      const values = Array.isArray(entry.value) ? entry.value : [entry.value ?? 0, entry.value ?? 0];
      box.append(el('div', { class: 'help', text: name }));
      box.append(curveEditor({
        name, values, layers: this.layers, min: p.min ?? 0, max: p.max ?? 1,
        onchange: (v) => {
          if (!filtered) { commit(v); return; }
          entries[i] = { ...entry, value: v };
          commit(entries.slice());
        },
      }));
    });
    const missing = FILTERS.filter((f) => !entries.some((e) => e.filter === f));
    if (missing.length) {
      const id = `f-filter-${p.name}-${Math.random().toString(36).slice(2, 7)}`;
      const sel = el('select', { id }, el('option', { value: '', text: 'a filter…' }),
                     ...missing.map((f) => el('option', { value: f, text: f })));
      sel.addEventListener('change', () => {
        if (!sel.value) return;
        const rest = entries.filter((e) => !e.filter);
        const fallback = rest.length ? rest : [{ value: entries[0].value }];
        commit([...entries.filter((e) => e.filter), { filter: sel.value, value: entries[0].value }, ...fallback]);
        this.render();
      });
      box.append(el('div', { class: 'bar' }, el('label', { for: id, text: 'Separate curve for' }), sel));
    }
    return box;
  }
}
