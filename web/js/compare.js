// The Compare page: llmerge::compare() on models picked here, drawn as
// heatmaps (layer × model pair, for any measure) and, per model of another
// depth, the layer-similarity matrix with the alignment's path. The figures
// are the JSON of docs/compare.md; every cell is a focusable element with its
// value as its accessible name, and a table of the whole-model figures comes
// first.
import { post, el } from './api.js';

const NS = 'http://www.w3.org/2000/svg';
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const MEASURES = ['cosine', 'relative_l2', 'task_cosine', 'sign_agreement', 'sign_conflict', 'top_k_overlap'];
const fmt = (v) => (v == null ? '–' : Number(v).toFixed(4));

// White to dark blue (the legend's ramp) for t in [0, 1].
function color(t) {
  if (t == null || !isFinite(t)) return '#ddd';
  const stops = [[247, 251, 255], [107, 174, 214], [8, 48, 107]];
  const x = Math.max(0, Math.min(1, t)) * 2, i = Math.min(1, Math.floor(x)), f = x - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${c.join(',')})`;
}

// A matrix heatmap: rows × cols of values in [lo, hi], an optional path of (row, col).
function heatmap({ title, rows, cols, values, lo, hi, path }) {
  if (lo == null) {
    const flat = values.flat().filter((v) => v != null);
    lo = flat.length ? Math.min(...flat) : 0;
    hi = flat.length ? Math.max(...flat) : 1;
  }
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }  // one value: mid-ramp, not invisible
  const cw = Math.max(8, Math.min(64, Math.floor(900 / Math.max(1, cols.length))));
  const ch = Math.max(10, Math.min(34, Math.floor(420 / Math.max(1, rows.length))));
  const left = 120, top = 10, bottom = 30;
  const w = left + cw * cols.length + 10, h = top + ch * rows.length + bottom;
  const s = svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: 'group', 'aria-label': title });
  rows.forEach((r, i) => {
    const t = svg('text', { x: left - 6, y: top + ch * i + ch / 2 + 4, 'text-anchor': 'end' });
    t.textContent = r;
    s.append(t);
    cols.forEach((c, j) => {
      const v = values[i][j];
      const rect = svg('rect', { class: 'cell', x: left + cw * j, y: top + ch * i, width: cw - 1, height: ch - 1,
                                 fill: color(v == null ? null : (v - lo) / (hi - lo || 1)), tabindex: 0,
                                 'aria-label': `${r}, ${c}: ${fmt(v)}` });
      const tip = svg('title');
      tip.textContent = `${r} · ${c}: ${fmt(v)}`;
      rect.append(tip);
      s.append(rect);
      if (cw >= 44 && ch >= 18 && v != null) {  // room for the number itself
        const t2 = svg('text', { x: left + cw * j + cw / 2, y: top + ch * i + ch / 2 + 4, 'text-anchor': 'middle',
                                 class: (v - lo) / (hi - lo) > 0.55 ? 'val light' : 'val', 'aria-hidden': 'true' });
        t2.textContent = Number(v).toFixed(3);
        s.append(t2);
      }
    });
  });
  const step = Math.ceil(cols.length / 16);
  cols.forEach((c, j) => {
    if (j % step) return;
    const t = svg('text', { x: left + cw * j + cw / 2, y: top + ch * rows.length + 14, 'text-anchor': 'middle' });
    t.textContent = c;
    s.append(t);
  });
  if (path) {
    s.append(svg('polyline', { class: 'path',
      points: path.map(([i, j]) => `${left + cw * j + cw / 2},${top + ch * i + ch / 2}`).join(' ') }));
  }
  return el('div', { class: 'heat' }, s,
    el('div', { class: 'legend' }, el('span', { text: fmt(lo) }), el('span', { class: 'ramp' }), el('span', { text: fmt(hi) })));
}

export class ComparePage {
  constructor({ known, onconfig }) {
    this.known = known;
    this.onconfig = onconfig;
    this.$ = (id) => document.getElementById(id);
    this.$('c-start').addEventListener('click', () => this.run());
  }

  // The model choices: every model folder and hub id the page knows.
  refresh() {
    const box = this.$('c-models');
    const picked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
    box.replaceChildren(...this.known().map((m, i) => {
      const id = `c-model-${i}`;
      return el('label', { for: id }, el('input', { id, type: 'checkbox', value: m, checked: picked.has(m) }), m);
    }));
    const base = this.$('c-base'), was = base.value;
    base.replaceChildren(el('option', { value: '', text: '(none)' }), ...this.known().map((m) => el('option', { value: m, text: m })));
    base.value = was;
  }

  async run() {
    const models = [...this.$('c-models').querySelectorAll('input:checked')].map((i) => i.value);
    const status = this.$('c-status');
    if (models.length < 2) { status.textContent = 'Pick two or more models.'; return; }
    status.textContent = `Comparing ${models.length} models…`;
    this.$('c-start').disabled = true;
    try {
      const doc = await post('/api/compare', { models, base: this.$('c-base').value, density: Number(this.$('c-density').value) });
      status.textContent = `Compared ${Number(doc.elements).toLocaleString()} elements per model.`;
      this.show(doc);
    } catch (e) {
      status.textContent = `Compare failed: ${e.body?.problems?.[0]?.message ?? e.message}`;
    } finally {
      this.$('c-start').disabled = false;
    }
  }

  show(doc) {
    const out = this.$('c-out');
    const name = (i) => doc.models[i].name.split('/').pop();
    const pairLabel = (p) => `${name(p.a)} · ${name(p.b)}`;
    const withBase = !!doc.base;
    const measures = MEASURES.filter((m) => withBase || !m.startsWith('task') && !m.startsWith('sign') && m !== 'top_k_overlap');

    const summary = el('div', { class: 'pane' }, el('h2', { text: 'Whole models' }),
      el('table', {}, el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'pair' }), measures.map((m) => el('th', { scope: 'col', text: m })))),
        el('tbody', {}, doc.pairs.map((p) => el('tr', {}, el('th', { scope: 'row', class: 'mono', text: pairLabel(p) }),
          measures.map((m) => el('td', { class: 'mono', text: fmt(p[m]) })))))));

    // Layer × pair heatmap, measure selectable.
    const heatBox = el('div');
    const sel = el('select', { id: 'c-measure' }, measures.map((m) => el('option', { value: m, text: m })));
    const drawHeat = () => {
      const m = sel.value;
      const values = doc.pairs.map((_, k) => doc.layers.map((l) => l.pairs[k]?.[m] ?? null));
      heatBox.replaceChildren(heatmap({ title: `${m} by layer and model pair`, rows: doc.pairs.map(pairLabel),
        cols: doc.layers.map((l) => String(l.layer)), values }));
    };
    sel.addEventListener('change', drawHeat);
    drawHeat();
    const layers = el('div', { class: 'pane', id: 'c-heatmap' }, el('h2', { text: 'By layer' }),
      el('div', { class: 'row' }, el('div', { class: 'field' }, el('label', { for: 'c-measure', text: 'Measure' }), sel)), heatBox,
      el('h3', { text: 'By module kind' }),
      el('table', {}, el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'kind' }),
        doc.pairs.map((p) => el('th', { scope: 'col', text: `${pairLabel(p)} cosine` })))),
        el('tbody', {}, doc.modules.map((k) => el('tr', {}, el('th', { scope: 'row', text: k.kind }),
          k.pairs.map((p) => el('td', { class: 'mono', text: fmt(p.cosine) })))))));

    const align = el('div', { class: 'pane', id: 'c-alignment' }, el('h2', { text: 'Layer alignment' }));
    for (const a of doc.alignment ?? []) {
      align.append(el('p', { text: `${name(a.model)} (${a.layers} layers) onto ${name(a.reference)} (${a.reference_layers} layers): mean similarity ${fmt(a.mean_similarity)}` }));
      align.append(heatmap({ title: `layer similarity of ${name(a.model)} and ${name(a.reference)}`,
        rows: a.similarity.map((_, j) => `${name(a.model)} ${j}`), cols: a.similarity[0].map((_, i) => String(i)),
        values: a.similarity, path: a.map.map((i, j) => [j, i]) }));
      if (a.slices_config) {
        align.append(el('pre', { class: 'card', text: a.slices_config }),
          el('button', { type: 'button', text: 'Open the aligned slices in the builder', onclick: () => this.onconfig(a.slices_config) }));
      }
    }
    const rec = doc.recommendation;
    const recBox = el('div', { class: 'pane' }, el('h2', { text: `Suggested: ${rec.method}` }),
      el('ul', {}, rec.reasons.map((r) => el('li', { text: r }))),
      el('pre', { class: 'card', text: rec.config }),
      el('button', { type: 'button', text: 'Open in the builder', onclick: () => this.onconfig(rec.config) }));
    out.replaceChildren(summary, layers, align, recBox);
  }
}
