// The Runs page: follow a merge live over server-sent events, cancel it, see
// its result and model card; the history kept in the server's state folder.
import { get, post, el, bytes } from './api.js';

const seconds = (s) => (s == null || !isFinite(s) ? '–' : s < 90 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`);

export class RunsPage {
  constructor({ onload }) {
    this.onload = onload;
    this.$ = (id) => document.getElementById(id);
    this.$('live-cancel').addEventListener('click', () => this.cancel());
  }

  async history() {
    const list = await get('/api/runs');
    const body = this.$('history').querySelector('tbody');
    body.replaceChildren(...list.map((r) => el('tr', {},
      el('td', { class: 'mono', text: r.created }),
      el('td', { class: 'mono', text: r.output }),
      el('td', { class: `outcome-${r.outcome}`, text: r.outcome }),
      el('td', {},
        el('button', { type: 'button', text: 'Open', 'aria-label': `Open run ${r.id}`, onclick: () => this.show(r.id) }), ' ',
        el('button', { type: 'button', text: 'Edit config', 'aria-label': `Load the config of run ${r.id}`,
                       onclick: async () => this.onload(await get(`/api/runs/${r.id}`)) }), ' ',
        el('button', { type: 'button', text: 'Re-run', 'aria-label': `Re-run ${r.id}`,
                       onclick: async () => this.follow((await post(`/api/runs/${r.id}/rerun`)).id) })))));
  }

  reset(title) {
    this.$('live').hidden = false;
    this.$('live-title').textContent = title;
    this.$('live-result').replaceChildren();
    this.$('live-bar').value = 0;
    for (const k of ['tensors', 'tensor', 'rate', 'floor', 'eta', 'mem']) this.$(`live-${k}`).textContent = '–';
  }

  follow(id) {
    this.id = id;
    this.es?.close();
    this.reset(`Merge ${id}`);
    this.$('live-status').textContent = 'starting';
    this.$('live-cancel').disabled = false;
    const es = new EventSource(`/api/runs/${id}/events`);
    this.es = es;
    const data = (e) => JSON.parse(e.data);
    es.addEventListener('status', (e) => { this.$('live-status').textContent = data(e).status; });
    es.addEventListener('plan', (e) => {
      const p = data(e);
      this.floor = p.disk_floor_bps;
      this.$('live-floor').textContent = p.disk_floor_bps ? `${bytes(p.disk_floor_bps)}/s` : 'not measured';
      this.$('live-tensors').textContent = `0 / ${p.tensors}`;
      this.$('live-mem').textContent = `estimate ${bytes(p.memory_estimate)}`;
    });
    es.addEventListener('progress', (e) => this.progress(data(e)));
    es.addEventListener('note', (e) => this.$('live-result').append(el('p', { class: 'muted', text: `note: ${data(e).note}` })));
    const end = (outcome) => (e) => { es.close(); this.finish(outcome, data(e)); };
    es.addEventListener('done', end('done'));
    es.addEventListener('failed', end('error'));
    es.addEventListener('cancelled', end('cancelled'));
  }

  progress(p) {
    this.$('live-bar').max = p.bytes_total || 1;
    this.$('live-bar').value = p.bytes_done;
    this.$('live-tensors').textContent = `${p.tensors_done} / ${p.tensors_total} (${bytes(p.bytes_done)} of ${bytes(p.bytes_total)})`;
    this.$('live-tensor').textContent = p.current_tensor || '–';
    this.$('live-rate').textContent = `${bytes(p.bytes_per_s)}/s`;
    const meter = this.$('live-meter');
    meter.max = Math.max(p.disk_floor_bps || 0, p.bytes_per_s || 0, 1);
    meter.value = p.bytes_per_s || 0;
    this.$('live-eta').textContent = seconds(p.eta_s);
    this.$('live-mem').textContent = `${bytes(p.rss_bytes)} resident (estimate ${bytes(p.memory_estimate)})`;
  }

  async finish(outcome, data) {
    this.$('live-status').textContent = outcome;
    this.$('live-cancel').disabled = true;
    const box = this.$('live-result');
    if (outcome === 'done') {
      this.$('live-bar').value = this.$('live-bar').max;
      box.append(el('p', { class: 'outcome-done',
        text: `Wrote ${data.output}: ${data.tensors} tensors, ${bytes(data.bytes)}, ${data.layers} layers in ${data.seconds.toFixed(1)} s` }));
      const rec = await get(`/api/runs/${this.id}`);
      if (rec.model_card) box.append(el('h3', { text: 'Model card' }), el('pre', { class: 'card', text: rec.model_card }));
    } else {
      const problems = data.problems?.length ? data.problems : [{ message: data.message }];
      box.append(el('p', { class: `outcome-${outcome}`,
        text: outcome === 'cancelled' ? 'Cancelled: nothing was left behind.' : 'The merge failed:' }));
      if (outcome !== 'cancelled') box.append(el('ul', {}, problems.map((p) => el('li', { text: p.message }))));
    }
    this.history();
  }

  async show(id) {
    const r = await get(`/api/runs/${id}`);
    this.id = id;
    this.reset(`Run ${id}`);
    this.$('live-status').textContent = r.outcome;
    this.$('live-cancel').disabled = r.outcome !== 'running';
    if (r.outcome === 'running') { this.follow(id); return; }
    const box = this.$('live-result');
    box.append(el('h3', { text: 'Config' }), el('pre', { class: 'card', text: r.yaml }));
    if (r.result?.output) box.append(el('p', { text: `${r.result.tensors} tensors, ${bytes(r.result.bytes)} in ${r.result.seconds?.toFixed(1)} s` }));
    if (r.result?.problems?.length) box.append(el('ul', {}, r.result.problems.map((p) => el('li', { text: p.message }))));
    if (r.model_card) box.append(el('h3', { text: 'Model card' }), el('pre', { class: 'card', text: r.model_card }));
  }

  async cancel() {
    if (!this.id) return;
    this.$('live-cancel').disabled = true;
    this.$('live-status').textContent = 'cancelling';
    await post(`/api/runs/${this.id}/cancel`);
  }
}
