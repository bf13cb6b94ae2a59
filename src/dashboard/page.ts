/**
 * The dashboard's one web page: HTML, CSS and script inline, no external resource and no build
 * step. The script opens `events` (server-sent events; the browser reconnects by itself), renders
 * each snapshot (model.ts Snapshot) into the DOM with textContent only (reasons and errors come from
 * replicas and are never parsed as HTML), and draws the plots as SVG polylines.
 *
 * The elements carry data attributes that say what they show (`data-replica`, `data-reachable`,
 * `data-role`, `data-view`, `data-state`; `data-view` on view-change rows): the browser test reads
 * the page through them.
 *
 * The script is a plain string: no template literal or `${` inside it (this file is a template).
 */
import { createHash } from 'node:crypto';

const STYLE = String.raw`
:root { --bg: #f4f6f8; --panel: #fff; --ink: #1c2430; --muted: #657386; --line: #dde3ea;
  --ok: #1f9d55; --warn: #d97706; --bad: #dc2626; --info: #2563eb; --violet: #7c3aed; --tput: #2563eb; --lat: #d97706; --p99: #dc2626; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; align-items: center; gap: 16px; padding: 12px 20px; background: #16202c; color: #fff; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header .sub { color: #9fb0c3; font-size: 13px; }
header .spacer { flex: 1; }
main { padding: 16px 20px 24px; display: grid; gap: 16px; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #334155; color: #fff; }
.pill.live { background: var(--ok); } .pill.stale, .pill.reconnecting { background: var(--bad); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tile .v { font-size: 22px; font-weight: 600; margin-top: 2px; }
.tile .v small { display: block; font-size: 12px; color: var(--muted); font-weight: 400; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; border-top: 4px solid var(--ok); }
.card[data-reachable="false"] { border-top-color: var(--bad); background: #fff7f7; }
.card[data-state="view-change"] { border-top-color: var(--warn); }
.card[data-state="state-transfer"], .card[data-state="recovering"] { border-top-color: var(--violet); }
.card-head { display: flex; align-items: center; gap: 6px; flex-wrap: wrap; }
.card-head .rid { font-weight: 700; font-size: 16px; margin-right: 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 4px; font-size: 12px; font-weight: 600; background: #e2e8f0; color: #334155; }
.badge.primary { background: #dbeafe; color: #1e40af; }
.badge.s-normal { background: #dcfce7; color: #166534; } .badge.s-view-change { background: #fef3c7; color: #92400e; }
.badge.s-state-transfer, .badge.s-recovering { background: #ede9fe; color: #5b21b6; } .badge.s-unreachable { background: #fee2e2; color: #991b1b; }
.badge.s-no-quorum, .badge.s-degraded { background: #fee2e2; color: #991b1b; }
.url { color: var(--muted); font-size: 12px; margin: 2px 0 8px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.facts { display: grid; grid-template-columns: auto 1fr; gap: 1px 10px; margin: 0 0 8px; font-size: 13px; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; font-variant-numeric: tabular-nums; }
.down { color: var(--bad); font-size: 13px; margin-bottom: 8px; }
.plot { margin-top: 6px; }
.plot .label { display: flex; justify-content: space-between; flex-wrap: wrap; font-size: 12px; color: var(--muted); }
.plot .label .k { white-space: nowrap; }
.plot .label b { color: var(--ink); font-weight: 600; }
.plot svg { display: block; width: 100%; background: #fafbfc; border: 1px solid var(--line); border-radius: 4px; }
.plot svg polyline { fill: none; stroke-width: 1.6; vector-effect: non-scaling-stroke; stroke-linejoin: round; }
.plot svg line.vc { stroke: var(--warn); stroke-dasharray: 3 3; vector-effect: non-scaling-stroke; }
.plot .axis { display: flex; justify-content: space-between; font-size: 11px; color: var(--muted); }
.key { display: inline-block; width: 10px; height: 3px; vertical-align: middle; margin: 0 3px 0 8px; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
.panel h2 { font-size: 15px; margin: 0 0 8px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); padding: 4px 6px; }
td { border-bottom: 1px solid #eef2f6; padding: 4px 6px; vertical-align: top; font-variant-numeric: tabular-nums; }
td.num, th.num { text-align: right; }
.empty { color: var(--muted); font-style: italic; }
.reason { color: var(--muted); font-size: 12px; }
.ev { padding: 6px 0; border-bottom: 1px solid #eef2f6; }
.ev b { color: var(--bad); }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; background: var(--ok); }
.dot.off { background: var(--bad); }
footer { color: var(--muted); font-size: 12px; padding: 0 20px 16px; }
`;

const SCRIPT = String.raw`
(function () {
  'use strict';
  var state = { snapshot: null, renders: 0, lastAt: 0 };
  window.pbftDashboard = state;
  var SVGNS = 'http://www.w3.org/2000/svg';

  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === undefined || attrs[k] === null) continue;
      if (k === 'class') el.className = attrs[k]; else if (k === 'text') el.textContent = String(attrs[k]); else el.setAttribute(k, String(attrs[k]));
    }
    if (children) for (var i = 0; i < children.length; i++) {
      var c = children[i];
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return el;
  }
  function s(tag, attrs) {
    var el = document.createElementNS(SVGNS, tag);
    for (var k in attrs) el.setAttribute(k, String(attrs[k]));
    return el;
  }
  function replace(id, children) {
    var el = document.getElementById(id);
    while (el.firstChild) el.removeChild(el.firstChild);
    for (var i = 0; i < children.length; i++) if (children[i]) el.appendChild(children[i]);
    return el;
  }
  function pad(n) { return n < 10 ? '0' + n : String(n); }
  function clock(ms) { if (ms === undefined || ms === null) return '-'; var d = new Date(ms); return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()); }
  function ago(ms, now) { if (ms === undefined) return 'never'; var s = Math.max(0, Math.round((now - ms) / 1000)); return s < 90 ? s + ' s ago' : Math.round(s / 60) + ' min ago'; }
  function dur(ms) { if (ms === undefined) return '-'; return ms < 1000 ? Math.round(ms) + ' ms' : (ms / 1000).toFixed(1) + ' s'; }
  function span(ms) { var s = Math.round(ms / 1000); return s < 120 ? s + ' s' : Math.round(s / 60) + ' min'; }
  function fmt(v, digits) { if (v === undefined || v === null) return '-'; return Number(v).toFixed(digits === undefined ? 0 : digits); }
  function ids(list) { return list && list.length ? list.join(', ') : 'none'; }
  function lastValue(arr) { for (var i = arr.length - 1; i >= 0; i--) if (arr[i] !== null) return arr[i]; return null; }
  function stateText(st) { return { 'normal': 'normal', 'view-change': 'view change', 'state-transfer': 'state transfer', 'recovering': 'recovering', 'unreachable': 'unreachable', 'unknown': 'unknown', 'no-quorum': 'no quorum', 'degraded': 'degraded' }[st] || st; }

  // A small time plot: each series a polyline (null values break it), view changes as dashed lines.
  // It spans the history window, or less while the dashboard has less (at least 10 s).
  function plot(title, unit, lines, snap, height, id) {
    var W = 300, H = height || 48;
    var t1 = snap.atMs, t0 = Math.max(t1 - snap.historyMs, snap.times.length ? snap.times[0] : 0);
    if (t1 - t0 < 10000) t0 = t1 - 10000;
    var points = 0;
    var max = 0;
    lines.forEach(function (l) { l.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    var top = max > 0 ? max * 1.15 : 1;
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', height: H, role: 'img', 'aria-label': title });
    if (id) svg.setAttribute('id', id);
    snap.viewChanges.forEach(function (vc) {
      if (vc.startedAtMs === undefined || vc.startedAtMs < t0) return;
      var x = (vc.startedAtMs - t0) / (t1 - t0) * W;
      svg.appendChild(s('line', { 'class': 'vc', x1: x, x2: x, y1: 0, y2: H }));
    });
    lines.forEach(function (l) {
      var pts = [];
      function flush() { if (pts.length > 1) { var pl = s('polyline', { points: pts.join(' ') }); pl.style.stroke = l.color; svg.appendChild(pl); }; pts = []; }
      for (var i = 0; i < snap.times.length; i++) {
        var v = l.values[i];
        if (v === null || v === undefined) { flush(); continue; }
        points++;
        var x = (snap.times[i] - t0) / (t1 - t0) * W;
        var y = H - 2 - (v / top) * (H - 4);
        pts.push(x.toFixed(1) + ',' + y.toFixed(1));
      }
      flush();
    });
    svg.setAttribute('data-points', String(points));
    // Each line's key carries its value of the latest round ('-': none, e.g. the replica did not answer).
    var keys = lines.map(function (l) {
      var v = l.values.length ? l.values[l.values.length - 1] : null;
      var k = h('span', { 'class': 'key' });
      k.style.background = l.color;
      return h('span', { 'class': 'k' }, [' ', k, (lines.length > 1 ? l.name + ' ' : ''), h('b', { text: v === null ? '-' : fmt(v, v < 10 ? 1 : 0) })]);
    });
    return h('div', { 'class': 'plot' }, [
      h('div', { 'class': 'label' }, [h('span', { text: title + ' (' + unit + ')' }), h('span', null, keys)]),
      svg,
      h('div', { 'class': 'axis' }, [h('span', { text: '-' + span(t1 - t0) }), h('span', { text: 'max ' + fmt(max, max < 10 ? 1 : 0) + ' ' + unit }), h('span', { text: 'now' })]),
    ]);
  }

  function tile(k, v, small, id) { return h('div', { 'class': 'tile' }, [h('div', { 'class': 'k', text: k }), h('div', { 'class': 'v', id: id }, [v, small ? h('small', { text: small }) : null])]); }

  function renderSummary(snap) {
    var c = snap.cluster;
    var tput = lastValue(snap.series.throughput), lat = lastValue(snap.series.latencyMeanMs), p99 = lastValue(snap.series.latencyP99Ms);
    var st = h('span', { 'class': 'badge s-' + c.state, id: 'cluster-state', text: stateText(c.state) });
    replace('summary', [
      tile('cluster', st),
      h('div', { 'class': 'tile' }, [h('div', { 'class': 'k', text: 'view' }), h('div', { 'class': 'v', id: 'cluster-view', 'data-view': c.view, text: c.view === undefined ? '-' : String(c.view) }, [])]),
      tile('primary', c.primary === undefined ? '-' : 'replica ' + c.primary, null, 'cluster-primary'),
      tile('replicas up', c.up + ' of ' + c.n, 'quorum ' + c.quorum + ', f = ' + c.f, 'cluster-up'),
      tile('epoch', String(c.epoch), 'members ' + c.members.join(', '), 'cluster-epoch'),
      tile('throughput', tput === null ? '-' : fmt(tput, tput < 10 ? 1 : 0), 'req/s', 'cluster-throughput'),
      tile('latency', lat === null ? '-' : fmt(lat, 1), p99 === null ? 'ms' : 'ms mean, p99 ' + fmt(p99, 1) + ' ms', 'cluster-latency'),
    ]);
  }

  function fact(dl, k, v) { dl.appendChild(h('dt', { text: k })); dl.appendChild(h('dd', { text: v })); }

  function renderReplicas(snap) {
    var cards = snap.replicas.map(function (r) {
      var head = h('div', { 'class': 'card-head' }, [
        h('span', { 'class': 'rid', text: 'replica ' + r.id }),
        h('span', { 'class': 'badge role' + (r.role === 'primary' ? ' primary' : ''), text: r.role }),
        h('span', { 'class': 'badge state s-' + r.state, text: stateText(r.state) }),
      ]);
      var body = [head, h('div', { 'class': 'url', text: r.url })];
      var dl = h('dl', { 'class': 'facts' });
      if (!r.reachable) {
        body.push(h('div', { 'class': 'down', text: 'unreachable: ' + (r.error || 'no answer') + (r.lastSeenAtMs === undefined ? ' (not seen since the dashboard started)' : ' (last answered ' + ago(r.lastSeenAtMs, snap.atMs) + ')') }));
        if (r.view !== undefined) fact(dl, 'last view', String(r.view));
        if (r.lastExecuted !== undefined) fact(dl, 'last executed', String(r.lastExecuted));
      } else {
        fact(dl, 'view', r.view + (r.primary !== undefined ? ' (primary ' + r.primary + ')' : ''));
        fact(dl, 'last executed', fmt(r.lastExecuted));
        fact(dl, 'stable checkpoint', fmt(r.stableCheckpoint));
        if (r.lastCheckpoint) fact(dl, 'last checkpoint', r.lastCheckpoint.seq + '  ' + r.lastCheckpoint.digest.slice(0, 12));
        fact(dl, 'epoch', fmt(r.epoch) + (r.member ? '' : ' (not a member)'));
        fact(dl, 'connected to', ids(r.replicasConnected) + (r.clientsConnected !== undefined ? ' + ' + r.clientsConnected + ' clients' : ''));
        if (r.suspicions && r.suspicions.length) fact(dl, 'suspect the primary', ids(r.suspicions));
        fact(dl, 'process', 'pid ' + fmt(r.pid) + ', up ' + fmt(r.uptimeSeconds) + ' s' + (r.rssBytes ? ', ' + fmt(r.rssBytes / 1048576) + ' MiB' : ''));
      }
      body.push(dl);
      body.push(plot('throughput', 'req/s', [{ name: 'executed', color: '#2563eb', values: r.series.throughput }], snap, 40));
      var answered = r.series.latencyMeanMs.some(function (v) { return v !== null; });
      body.push(plot('latency', 'ms', [
        { name: 'agreement', color: '#7c3aed', values: r.series.agreementMs },
      ].concat(answered ? [
        { name: 'request', color: '#d97706', values: r.series.latencyMeanMs },
        { name: 'p99', color: '#dc2626', values: r.series.latencyP99Ms },
      ] : []), snap, 40));
      return h('div', { 'class': 'card', 'data-replica': r.id, 'data-reachable': String(r.reachable), 'data-role': r.role, 'data-view': r.view === undefined ? '' : r.view, 'data-state': r.state }, body);
    });
    replace('replicas', cards);
  }

  function renderClusterPlots(snap) {
    replace('cluster-plots', [
      plot('throughput (median of the members)', 'req/s', [{ name: 'executed', color: '#2563eb', values: snap.series.throughput }], snap, 90, 'plot-throughput'),
      plot('latency', 'ms', [
        { name: 'request', color: '#d97706', values: snap.series.latencyMeanMs },
        { name: 'p99', color: '#dc2626', values: snap.series.latencyP99Ms },
        { name: 'agreement', color: '#7c3aed', values: snap.series.agreementMs },
      ], snap, 90, 'plot-latency'),
      h('div', { 'class': 'reason', text: 'request: a client request arriving at a replica to its reply leaving it (measured where clients send requests: the primary). agreement: per batch, a replica\u2019s PRE-PREPARE or PREPARE leaving to the batch committing there (median of the members).' }),
    ]);
  }

  function reasonList(list) {
    return h('div', null, list.map(function (x) { return h('div', { 'class': 'reason', text: x.reason + ' (' + ids(x.replicas) + ')' }); }));
  }

  function renderViewChanges(snap) {
    var tbody = h('tbody');
    snap.viewChanges.forEach(function (vc) {
      tbody.appendChild(h('tr', { 'data-view': vc.view }, [
        h('td', { text: (vc.from !== undefined ? vc.from + ' \u2192 ' : '') + vc.view }),
        h('td', { text: vc.primary === undefined ? '-' : String(vc.primary) }),
        h('td', { text: clock(vc.startedAtMs) }),
        h('td', { text: vc.enteredBy.length ? dur(vc.durationMs) : 'in progress' }),
        h('td', null, [reasonList(vc.reasons), vc.suspected.length ? reasonList(vc.suspected.map(function (x) { return { reason: 'suspected: ' + x.reason, replicas: x.replicas }; })) : null, !vc.reasons.length && vc.observed ? h('div', { 'class': 'reason', text: 'seen by the dashboard' }) : null]),
        h('td', { text: ids(vc.enteredBy) }),
      ]));
    });
    var table = h('table', { id: 'vc-history' }, [
      h('thead', null, [h('tr', null, ['view', 'primary', 'started', 'took', 'why', 'entered by'].map(function (t) { return h('th', { text: t }); }))]),
      tbody,
    ]);
    replace('view-changes', [snap.viewChanges.length ? table : h('div', { 'class': 'empty', id: 'vc-none', text: 'no view change seen' })]);
  }

  function renderMembership(snap) {
    var c = snap.cluster;
    var members = {};
    c.members.forEach(function (m) { members[m] = true; });
    var rows = snap.replicas.map(function (r) {
      var dot = h('span', { 'class': 'dot' + (r.reachable ? '' : ' off') });
      return h('tr', null, [h('td', null, [dot, 'replica ' + r.id]), h('td', { text: r.url }), h('td', { text: members[r.id] ? 'member' : 'not a member' }), h('td', { text: r.reachable ? 'reachable' : 'unreachable' })]);
    });
    var parts = [
      h('div', { text: 'epoch ' + c.epoch + ': replicas ' + c.members.join(', ') + ' (n = ' + c.n + ', f = ' + c.f + ', quorum ' + c.quorum + '; ' + c.up + ' reachable)' }),
      h('table', null, [h('tbody', null, rows)]),
    ];
    if (c.nextEpoch) parts.push(h('div', { 'class': 'reason', text: 'pending: epoch ' + c.nextEpoch.epoch + ' (replicas ' + c.nextEpoch.replicas.join(', ') + ') after checkpoint ' + c.nextEpoch.since }));
    replace('membership', parts);
  }

  function renderRejected(snap) {
    if (!snap.rejected.length) { replace('rejected', [h('div', { 'class': 'empty', text: 'nothing rejected' })]); return; }
    var rids = snap.replicas.map(function (r) { return r.id; });
    var head = h('tr', null, [h('th', { text: 'reason' }), h('th', { 'class': 'num', text: 'total' }), h('th', { 'class': 'num', text: 'last min' })].concat(rids.map(function (id) { return h('th', { 'class': 'num', text: 'r' + id }); })));
    var rows = snap.rejected.map(function (x) {
      return h('tr', { 'data-reason': x.reason }, [h('td', { text: x.reason }), h('td', { 'class': 'num', text: x.total }), h('td', { 'class': 'num', text: x.lastMinute })].concat(rids.map(function (id) {
        var v = x.byReplica[String(id)]; return h('td', { 'class': 'num', text: v === undefined ? '-' : v });
      })));
    });
    replace('rejected', [h('table', null, [h('thead', null, [head]), h('tbody', null, rows)])]);
  }

  function renderEvidence(snap) {
    var e = snap.evidence, items = [];
    e.misbehaviour.forEach(function (m) {
      items.push(h('div', { 'class': 'ev' }, [h('b', { text: 'replica ' + m.peer }), ' ' + m.code + ' \u00d7 ' + m.count + ', reported by ' + ids(m.reportedBy) + ', last ' + clock(m.lastAtMs), h('div', { 'class': 'reason', text: m.reason })]));
    });
    if (!e.misbehaviour.length) e.counts.forEach(function (c) { items.push(h('div', { 'class': 'ev' }, [h('b', { text: c.code }), ' \u00d7 ' + c.count + ' seen by replica ' + c.observer])); });
    e.divergences.forEach(function (d) { items.push(h('div', { 'class': 'ev' }, [h('b', { text: 'replica ' + d.replica }), ': own checkpoint differed from the agreed one ' + d.count + ' time(s)'])); });
    e.storedState.forEach(function (d) { items.push(h('div', { 'class': 'ev' }, [h('b', { text: 'replica ' + d.replica }), ': stored state corrupt ' + d.corruptions + ', lost ' + d.losses])); });
    (e.equivocation || []).forEach(function (d) { items.push(h('div', { 'class': 'ev' }, [h('b', { text: 'equivocation' }), ': replica ' + d.observer + ' holds ' + d.held + ' piece(s) of signed evidence against ' + (d.signers.length ? 'replica(s) ' + ids(d.signers) : 'unknown signers') + ' (pbft evidence export)'])); });
    e.clientsCutOff.forEach(function (d) { items.push(h('div', { 'class': 'ev' }, ['replica ' + d.replica + ' cut off misbehaving clients ' + d.count + ' time(s)'])); });
    replace('evidence', items.length ? items : [h('div', { 'class': 'empty', text: 'no evidence of faults' })]);
  }

  function render(snap) {
    state.snapshot = snap;
    state.lastAt = Date.now();
    document.getElementById('cluster-id').textContent = snap.clusterId;
    document.title = 'pbft ' + snap.clusterId + ' \u00b7 ' + stateText(snap.cluster.state) + (snap.cluster.view !== undefined ? ' \u00b7 view ' + snap.cluster.view : '');
    renderSummary(snap);
    renderReplicas(snap);
    renderClusterPlots(snap);
    renderViewChanges(snap);
    renderMembership(snap);
    renderRejected(snap);
    renderEvidence(snap);
    document.getElementById('updated').textContent = 'updated ' + clock(snap.atMs);
    state.renders++;
  }

  function setConn(text, cls) { var el = document.getElementById('conn'); el.textContent = text; el.className = 'pill ' + cls; }
  var source = new EventSource('events');
  source.onopen = function () { setConn('live', 'live'); };
  source.onerror = function () { setConn('reconnecting', 'reconnecting'); };
  source.onmessage = function (ev) {
    setConn('live', 'live');
    try { render(JSON.parse(ev.data)); } catch (err) { console.error('render failed', err); }
  };
  setInterval(function () { if (state.lastAt && Date.now() - state.lastAt > 5000) setConn('stale', 'stale'); }, 1000);
})();
`;

const HTML_HEAD = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pbft dashboard</title>
<style>`;

const HTML_BODY = String.raw`</style>
</head>
<body>
<header>
  <h1>PBFT cluster <span id="cluster-id">...</span></h1>
  <span class="sub" id="updated">waiting for the first snapshot</span>
  <span class="spacer"></span>
  <span id="conn" class="pill">connecting</span>
</header>
<main>
  <section id="summary" class="tiles"></section>
  <section id="replicas" class="grid"></section>
  <section class="row">
    <div class="panel"><h2>Cluster throughput and latency</h2><div id="cluster-plots"></div></div>
    <div class="panel"><h2>View changes</h2><div id="view-changes"></div></div>
  </section>
  <section class="row">
    <div class="panel"><h2>Rejected inputs, by reason</h2><div id="rejected"></div></div>
    <div class="panel"><h2>Evidence of faults</h2><div id="evidence"></div></div>
    <div class="panel"><h2>Membership</h2><div id="membership"></div></div>
  </section>
</main>
<footer>pbft dashboard: every replica's GET /status and /metrics, polled by the dashboard process; live over server-sent events.</footer>
<script>`;

const HTML_TAIL = `</script>
</body>
</html>
`;

/** The inline script (exported for a syntax check in the unit tests). */
export const DASHBOARD_SCRIPT = SCRIPT;

/** The page. */
export const DASHBOARD_HTML = HTML_HEAD + STYLE + HTML_BODY + SCRIPT + HTML_TAIL;

/**
 * Content-Security-Policy of the page: only its own inline script (by hash) and style, and
 * connections back to its own origin (the event stream).
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
