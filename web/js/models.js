// The Models page: browse the roots and the HF cache, inspect a model.
import { get, el, bytes } from './api.js';

export class ModelsPage {
  constructor(onpick) {
    this.onpick = onpick;
    this.list = document.getElementById('browse-list');
    this.pathEl = document.getElementById('browse-path');
    this.out = document.getElementById('inspect-out');
    this.actions = document.getElementById('inspect-actions');
    document.getElementById('use-base').addEventListener('click', () => this.onpick('base', this.current));
    document.getElementById('use-model').addEventListener('click', () => this.onpick('model', this.current));
    this.known = [];
  }

  async open(path = '') {
    const r = await get(`/api/browse?path=${encodeURIComponent(path)}`);
    this.pathEl.textContent = r.path || 'Roots';
    const items = [];
    if (r.path) {
      items.push(el('li', {}, el('button', { type: 'button', text: '⬑ up',
        onclick: () => this.open(r.parent ?? '') })));
    }
    for (const e of r.entries) {
      const label = `${e.model ? '◆ ' : e.dir ? '▸ ' : '  '}${e.name}${e.size != null ? ` (${bytes(e.size)})` : ''}`;
      items.push(el('li', {}, el('button', {
        type: 'button', class: e.model ? 'model' : null, text: label,
        'aria-label': `${e.model ? 'model' : e.dir ? 'folder' : 'file'} ${e.name}`,
        onclick: () => (e.model ? this.inspect(e.path) : e.dir ? this.open(e.path) : null),
        ondblclick: () => e.dir && this.open(e.path),
      })));
      if (e.model && !this.known.includes(e.path)) this.known.push(e.path);
    }
    this.list.replaceChildren(...items);
    this.list.querySelector('button')?.focus();
  }

  async inspect(model) {
    this.out.replaceChildren(el('p', { class: 'muted', text: `Reading ${model}…` }));
    try {
      const m = await get(`/api/inspect?model=${encodeURIComponent(model)}`);
      this.current = model;
      this.actions.hidden = false;
      const q = m.quantization ? `${m.quantization.bits}-bit ${m.quantization.mode}, group ${m.quantization.group_size} (${m.quantization.quantized_tensors} tensors)` : 'none';
      const rows = [
        ['path', m.path], ['architecture', m.architecture ?? '(unknown)'], ['model type', m.model_type ?? '–'],
        ['layers', `${m.layers.count} (${m.layers.prefix || '–'})`], ['hidden size', m.hidden_size ?? '–'],
        ['vocabulary', m.vocab_size ?? '–'], ['parameters', Number(m.parameters).toLocaleString()],
        ['tensors', m.tensor_count], ['dtypes', Object.entries(m.dtypes).map(([k, v]) => `${k} × ${v}`).join(', ')],
        ['size on disk', bytes(m.size_on_disk)], ['shards', m.shards.length], ['quantization', q],
        ['tied embeddings', m.tied_embeddings ? 'yes' : 'no'],
        ['tokenizer', m.tokenizer_files.length ? m.tokenizer_files.map((t) => `${t.file} (${bytes(t.size)})`).join(', ') : 'no tokenizer files'],
      ];
      this.out.replaceChildren(el('table', { class: 'info' },
        el('tbody', {}, rows.map(([k, v]) => el('tr', {}, el('th', { scope: 'row', text: k }), el('td', { class: 'mono', text: String(v) }))))));
      return m;
    } catch (e) {
      this.actions.hidden = true;
      this.out.replaceChildren(el('p', { class: 'error', text: e.message }));
    }
  }
}
