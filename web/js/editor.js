// The YAML editor: a plain textarea over a backdrop that marks the lines the
// plan's problems point at and writes each message at the end of its line,
// with a line-number gutter. The problem list below links to the lines.
import { el } from './api.js';

export class YamlEditor {
  constructor(onedit) {
    this.text = document.getElementById('yaml');
    this.backdrop = document.getElementById('backdrop');
    this.gutter = document.getElementById('gutter');
    this.list = document.getElementById('problems');
    this.problems = [];
    this.text.addEventListener('input', () => { this.paint(); onedit(this.text.value); });
    this.text.addEventListener('scroll', () => this.sync());
    this.text.addEventListener('keydown', (e) => {
      // Tab indents by two spaces; Escape then Tab leaves the editor (WCAG 2.1.2).
      if (e.key === 'Escape') { this.escaped = true; return; }
      if (e.key === 'Tab' && !e.shiftKey && !this.escaped) {
        e.preventDefault();
        this.text.setRangeText('  ', this.text.selectionStart, this.text.selectionEnd, 'end');
        this.paint(); onedit(this.text.value);
      }
      this.escaped = false;
    });
  }

  get value() { return this.text.value; }

  set value(v) {
    if (this.text.value === v) return;
    this.text.value = v;
    this.paint();
  }

  sync() {
    this.backdrop.scrollTop = this.text.scrollTop;
    this.backdrop.scrollLeft = this.text.scrollLeft;
    this.gutter.scrollTop = this.text.scrollTop;
  }

  setProblems(problems) {
    this.problems = problems;
    this.paint();
    this.list.replaceChildren(...problems.map((p) => {
      const where = p.line ? `line ${p.line}${p.column ? `, column ${p.column}` : ''}` : 'whole config';
      const b = el('button', { type: 'button', onclick: () => this.goto(p.line, p.column) },
        el('span', { class: 'where', text: `${where}${p.yaml_path ? ` · ${p.yaml_path}` : ''} · ${p.kind}` }),
        el('span', { class: 'msg', text: ` ${p.message}${p.count > 1 ? ` (${p.count} tensors)` : ''}` }),
        p.hint ? el('span', { class: 'hint', text: `hint: ${p.hint}` }) : null);
      return el('li', {}, b);
    }));
  }

  goto(line, column) {
    if (!line) { this.text.focus(); return; }
    const lines = this.text.value.split('\n');
    let pos = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    pos += Math.max(0, (column || 1) - 1);
    this.text.focus();
    this.text.setSelectionRange(pos, pos);
    const lh = 20;
    this.text.scrollTop = Math.max(0, (line - 4) * lh);
    this.sync();
  }

  paint() {
    const lines = this.text.value.split('\n');
    const byLine = new Map();
    for (const p of this.problems) if (p.line) (byLine.get(p.line) ?? byLine.set(p.line, []).get(p.line)).push(p);
    this.backdrop.replaceChildren(...lines.map((text, i) => {
      const ps = byLine.get(i + 1);
      const row = el('div', {}, ps ? el('span', { class: 'bad', text: text || ' ' }) : text || ' ');
      if (ps) row.append(el('span', { class: 'msg', text: `← ${ps.map((p) => p.message).join('; ')}` }));
      return row;
    }));
    this.gutter.replaceChildren(...lines.map((_, i) => el('div', { class: byLine.has(i + 1) ? 'bad' : null,
                                                                    text: String(i + 1) })));
    this.sync();
  }
}
