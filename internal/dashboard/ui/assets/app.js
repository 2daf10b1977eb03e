// lbsys proxy UI: polls the admin API once a second and draws, per
// service, three uPlot charts over a fixed window of points, the endpoint
// table, the directive timeline, incidents and events. Plain JavaScript,
// no framework; all text from the server goes through textContent.
//
// Memory stays flat however long the page runs: every series is trimmed to
// WINDOW points before uPlot's setData, the forecast ahead is replaced
// whole (the server bounds it), the timeline keeps MAX_CHANGES entries,
// tables are rebuilt in place.
//
// Past "now" each chart shows what the running directive says is coming:
// the forecast and its upper band, the replica floor, and the announced
// events (the x range reaches the next one within WINDOW seconds), on a
// tinted background. Under a replay (`lbsys demo`) the time axis is
// labelled in the replayed day's time; the data stays on the wall clock.
(function () {
  'use strict';

  var params = new URLSearchParams(location.search);
  // ?service=NAME shows one service; ?window=N keeps N points per chart
  // (2 to 3600, default 300: five minutes).
  var only = params.get('service') || '';
  var WINDOW = Math.min(3600, Math.max(2, parseInt(params.get('window'), 10) || 300));
  var MAX_CHANGES = 100; // directive versions kept on the page
  // How far past now the x range may reach for an announced event: the
  // window's length, at most an hour (the forecast ahead is bounded by the
  // server).
  var EVENT_LOOKAHEAD = Math.min(WINDOW, 3600);
  var POLL_MS = 1000;
  var FETCH_TIMEOUT_MS = 5000;
  var FIELDS = ['rps', 'forecast', 'forecast_hi', 'endpoints', 'endpoints_total', 'replica_floor',
    'admission_limit', 'in_flight', 'error_rate', 'p99_ms'];

  // The page's data model, exposed for tests and curious people.
  var ui = window.lbsysUI = {
    window: WINDOW,
    polls: 0,
    failures: 0,
    lastError: '',
    last: 0, // newest telemetry second received (unix s)
    seq: 0, // newest directive change received
    ready: false,
    firstDataMs: null, // performance.now() when the first data was drawn
    services: {}, // name -> {data: {t: [], rps: [], …}, charts: [uPlot…], el…}
    order: [],
    changes: [], // newest last
    incidents: [],
    events: [],
    replay: null, // {wall_start, virtual_start, factor} under a replay
    drawnEvents: {}, // service -> event names drawn on its request chart
    state: null,
    summary: summary,
  };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (k === 'class') e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
    }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function num(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (digits === undefined) digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
    return Number(v).toFixed(digits);
  }

  function utc(sec) {
    return new Date(sec * 1000).toISOString().slice(11, 19) + 'Z';
  }

  function isoShort(s) {
    if (!s) return '–';
    var d = new Date(s);
    if (isNaN(d)) return String(s);
    return d.toISOString().replace('.000Z', 'Z').replace('T', ' ');
  }

  // Replay: the replayed day's time (unix s) of a wall-clock second, and
  // back. Identity without a replay.
  function toVirtual(t) {
    var r = ui.replay;
    if (!r) return t;
    return r.vs + (t - r.ws) * r.factor;
  }
  function toWall(v) {
    var r = ui.replay;
    if (!r) return v;
    return r.ws + (v - r.vs) / r.factor;
  }
  function hhmm(sec, withSeconds) {
    var s = new Date(Math.round(sec) * 1000).toISOString();
    return withSeconds ? s.slice(11, 19) : s.slice(11, 16);
  }
  // when writes a time for a person: in the replayed day's time under a
  // replay (with the wall clock's beside it), else in UTC.
  function when(iso) {
    if (!iso) return '–';
    var t = Date.parse(iso) / 1000;
    if (isNaN(t)) return String(iso);
    if (!ui.replay) return isoShort(iso);
    return hhmm(toVirtual(t)) + ' replayed (' + hhmm(t, true) + 'Z wall clock)';
  }

  function lastValue(a) {
    for (var i = a.length - 1; i >= 0; i--) if (a[i] !== null && a[i] !== undefined) return a[i];
    return null;
  }

  function getJSON(url) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, FETCH_TIMEOUT_MS);
    return fetch(url, { signal: ctl.signal, cache: 'no-store' }).then(function (r) {
      clearTimeout(timer);
      if (!r.ok) {
        return r.text().then(function (t) { throw new Error(url + ': ' + r.status + ' ' + t.slice(0, 200)); });
      }
      return r.json();
    }, function (e) {
      clearTimeout(timer);
      throw new Error(url + ': ' + (e && e.name === 'AbortError' ? 'no answer in ' + FETCH_TIMEOUT_MS / 1000 + ' s' : e));
    });
  }

  // ---- markers: directive versions, events, SLO incidents -------------

  var hatch = null;
  function hatchPattern(ctx) {
    if (hatch) return hatch;
    var c = document.createElement('canvas');
    c.width = c.height = 8;
    var g = c.getContext('2d');
    g.strokeStyle = 'rgba(154, 52, 18, 0.45)';
    g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.stroke();
    hatch = ctx.createPattern(c, 'repeat');
    return hatch;
  }

  function touches(ch, name) {
    if (ch.none || ch.initial) return true;
    for (var i = 0; i < (ch.services || []).length; i++) {
      if (ch.services[i].name === name && ch.services[i].changed) return true;
    }
    return false;
  }

  // concerns says whether an event is for a service (no services: every
  // one).
  function concerns(ev, name) {
    return !ev.services || ev.services.length === 0 || ev.services.indexOf(name) >= 0;
  }

  function eventLabel(ev) {
    var t = ev.title || String(ev.name).split(' ')[0];
    return 'E ' + (t.length > 28 ? t.slice(0, 27) + '…' : t);
  }

  // lastOf is the newest second a service's charts hold (null: none).
  function lastOf(name) {
    var d = ui.services[name] && ui.services[name].data;
    return d && d.t.length ? d.t[d.t.length - 1] : null;
  }

  // drawFuture tints the chart's area after now, under the series: what
  // is there is forecast, not measured.
  function drawFuture(u, name) {
    var now = lastOf(name), max = u.scales.x.max;
    if (now === null || max === undefined || max === null || max <= now) return;
    var x0 = u.valToPos(Math.max(now, u.scales.x.min), 'x', true), x1 = u.valToPos(max, 'x', true);
    var ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = 'rgba(130, 80, 223, 0.07)';
    ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
    ctx.restore();
  }

  function drawMarkers(u, name, kind) {
    var ctx = u.ctx, min = u.scales.x.min, max = u.scales.x.max;
    if (min === undefined || max === undefined || min === null) return;
    var top = u.bbox.top, h = u.bbox.height, px = uPlot.pxRatio;
    ctx.save();
    ctx.font = (10 * px) + 'px sans-serif';
    ctx.textBaseline = 'top';
    ui.incidents.forEach(function (inc) {
      if (inc.service !== name) return;
      var s = Date.parse(inc.start) / 1000, e = Date.parse(inc.end) / 1000;
      if (e < min || s > max) return;
      var x0 = u.valToPos(Math.max(s, min), 'x', true), x1 = u.valToPos(Math.min(e, max), 'x', true);
      ctx.fillStyle = hatchPattern(ctx);
      ctx.fillRect(x0, top, Math.max(x1 - x0, 2 * px), h);
      ctx.fillStyle = '#9a3412';
      ctx.fillText('SLO', x0 + 2 * px, top + 2 * px);
    });
    // Now, when the chart reaches past it: the forecast starts there.
    var now = lastOf(name);
    if (now !== null && max > now && now >= min) {
      var xn = u.valToPos(now, 'x', true);
      ctx.strokeStyle = '#8250df';
      ctx.fillStyle = '#8250df';
      ctx.lineWidth = 1 * px;
      ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(xn, top); ctx.lineTo(xn, top + h); ctx.stroke();
      ctx.textBaseline = 'bottom';
      ctx.fillText('now · forecast →', xn + 3 * px, top + h - 2 * px);
      ctx.textBaseline = 'top';
    }
    // Light lines: a controller re-planning every minute of a compressed
    // replay draws many.
    ctx.strokeStyle = 'rgba(87, 96, 106, 0.55)';
    ctx.fillStyle = '#1b1f24';
    // Versions close together (a controller re-planning every few
    // seconds) keep their lines; a label is written only where there is
    // room for it, the newest one always.
    var shown = ui.changes.filter(function (ch) {
      var t = Date.parse(ch.seen_at) / 1000;
      return t >= min && t <= max && touches(ch, name);
    });
    var labelRight = Infinity;
    for (var i = shown.length - 1; i >= 0; i--) {
      var ch = shown[i];
      var x = u.valToPos(Date.parse(ch.seen_at) / 1000, 'x', true);
      ctx.lineWidth = 1 * px;
      ctx.setLineDash([6 * px, 4 * px]);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
      var label = ch.none ? 'none' : 'v' + ch.version;
      var w = ctx.measureText(label).width + 6 * px;
      if (x + 3 * px + w <= labelRight) {
        ctx.fillText(label, x + 3 * px, top + 14 * px);
        labelRight = x;
      }
    }
    // The replica floor's ready-by time, on the capacity chart.
    var ah = ui.services[name] && ui.services[name].ahead;
    if (kind === 'cap' && ah && ah.floor_by !== null && ah.floor_by >= min && ah.floor_by <= max) {
      var xb = u.valToPos(ah.floor_by, 'x', true);
      ctx.fillStyle = '#1a7f37';
      ctx.beginPath();
      ctx.moveTo(xb, top + h - 10 * px); ctx.lineTo(xb - 5 * px, top + h); ctx.lineTo(xb + 5 * px, top + h);
      ctx.closePath(); ctx.fill();
      ctx.textBaseline = 'bottom';
      ctx.fillText('floor ready by', xb + 6 * px, top + h - 12 * px);
      ctx.textBaseline = 'top';
      ctx.fillStyle = '#1b1f24';
    }
    // Announced events: the span shaded, a solid line at the start.
    var drawn = [];
    ui.events.forEach(function (ev) {
      if (!concerns(ev, name)) return;
      var t = Date.parse(ev.at) / 1000, e = ev.end ? Date.parse(ev.end) / 1000 : t;
      if (e < min || t > max) return;
      drawn.push(ev.name);
      if (e > t) {
        var s0 = u.valToPos(Math.max(t, min), 'x', true), s1 = u.valToPos(Math.min(e, max), 'x', true);
        ctx.fillStyle = 'rgba(191, 135, 0, 0.12)';
        ctx.fillRect(s0, top, s1 - s0, h);
        ctx.fillStyle = '#1b1f24';
      }
      if (t < min) return;
      var x = u.valToPos(t, 'x', true);
      ctx.strokeStyle = '#7d4e00';
      ctx.lineWidth = 2.5 * px;
      ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
      ctx.fillStyle = '#7d4e00';
      ctx.fillText(eventLabel(ev), x + 3 * px, top + 26 * px);
    });
    if (kind === 'req') ui.drawnEvents[name] = drawn;
    ctx.restore();
  }

  // ---- charts ---------------------------------------------------------

  function fromZero(u, lo, hi) {
    return [0, hi > 0 ? hi * 1.1 : 1];
  }

  // Endpoint counts are small integers: one spare step on top keeps the
  // lines off the frame and apart from the concurrency lines.
  function countRange(u, lo, hi) {
    return [0, (hi > 0 ? Math.ceil(hi) : 1) + 1];
  }

  // xRange is a chart's time range: its data (the window and the forecast
  // ahead) and, within EVENT_LOOKAHEAD seconds of now, the next announced
  // events of the service, so that a coming sale is on the chart before
  // the forecast reaches it.
  function xRange(name, lo, hi) {
    if (lo === null || lo === undefined) return [lo, hi];
    var now = lastOf(name);
    if (now !== null) {
      var cap = now + EVENT_LOOKAHEAD;
      ui.events.forEach(function (ev) {
        if (!concerns(ev, name)) return;
        var t = Date.parse(ev.at) / 1000, e = ev.end ? Date.parse(ev.end) / 1000 : t;
        if (t > now && t <= cap) hi = Math.max(hi, Math.min(e, cap));
      });
    }
    if (hi - lo < 10) hi = lo + 10;
    return [lo, hi + (hi - lo) * 0.02];
  }

  // Nice steps of the time axis, in seconds of the time it is labelled in.
  var STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  // timeSplits places the time axis' ticks on round times of the time it
  // is labelled in (the replayed day's under a replay), at least as far
  // apart as uPlot's own choice.
  function timeSplits(u, axisIdx, min, max, incr) {
    var f = ui.replay ? ui.replay.factor : 1;
    var step = STEPS[STEPS.length - 1];
    for (var i = 0; i < STEPS.length; i++) {
      if (STEPS[i] >= incr * f) { step = STEPS[i]; break; }
    }
    var out = [];
    for (var v = Math.ceil(toVirtual(min) / step) * step; v <= toVirtual(max) && out.length < 200; v += step) out.push(toWall(v));
    return out;
  }

  function timeValues(u, splits) {
    var vs = splits.map(toVirtual);
    var seconds = vs.some(function (v) { return Math.round(v) % 60 !== 0; });
    var labels = vs.map(function (v) { return hhmm(v, seconds); });
    ui.axisLabels = labels; // the last drawn, for tests
    return labels;
  }

  function chartOpts(name, kind, width) {
    var base = {
      width: width,
      height: 200,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'); },
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      plugins: [{ hooks: {
        drawClear: [function (u) { drawFuture(u, name); }],
        draw: [function (u) { drawMarkers(u, name, kind); }],
      } }],
    };
    var step = uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined;
    var x = { time: true, range: function (u, lo, hi) { return xRange(name, lo, hi); } };
    if (kind === 'req') {
      base.scales = { x: x, y: { range: fromZero } };
      base.series = [{},
        { label: 'actual req/s', stroke: '#1f6feb', width: 2 },
        { label: 'forecast', stroke: '#8250df', width: 2, dash: [8, 4] },
        { label: 'upper band', stroke: '#8250df', width: 1, dash: [2, 3] },
        { label: 'forecast ahead', stroke: '#8250df', width: 2.5, dash: [4, 4], points: { show: false } },
        { label: 'upper band ahead', stroke: '#8250df', width: 1, dash: [2, 3], points: { show: false } }];
      base.bands = [{ series: [3, 2], fill: 'rgba(130, 80, 223, 0.10)' },
        { series: [5, 4], fill: 'rgba(130, 80, 223, 0.22)' }];
      base.axes = [{}, { label: 'req/s' }];
    } else if (kind === 'cap') {
      base.scales = { x: x, n: { range: countRange }, c: { range: fromZero } };
      base.series = [{},
        { label: 'in rotation', scale: 'n', stroke: '#1a7f37', width: 2, paths: step },
        { label: 'configured', scale: 'n', stroke: '#57606a', width: 1, paths: step },
        { label: 'replica floor', scale: 'n', stroke: '#1a7f37', width: 1.5, dash: [8, 4], paths: step },
        { label: 'admission limit', scale: 'c', stroke: '#bc4c00', width: 1.5, dash: [2, 3] },
        { label: 'in flight', scale: 'c', stroke: '#bc4c00', width: 1, dash: [8, 3, 2, 3] },
        { label: 'floor ahead', scale: 'n', stroke: '#1a7f37', width: 2.5, dash: [4, 4], paths: step, points: { show: false } }];
      base.axes = [{}, { scale: 'n', label: 'endpoints' },
        { scale: 'c', side: 1, label: 'concurrency', grid: { show: false } }];
    } else {
      base.scales = { x: x, pct: { range: fromZero }, ms: { range: fromZero } };
      base.series = [{},
        { label: 'error rate %', scale: 'pct', stroke: '#cf222e', width: 2 },
        { label: 'p99 ms', scale: 'ms', stroke: '#0969da', width: 1.5, dash: [8, 4] }];
      base.axes = [{}, { scale: 'pct', label: 'errors %' },
        { scale: 'ms', side: 1, label: 'p99 ms', grid: { show: false } }];
    }
    base.axes[0].splits = timeSplits;
    base.axes[0].values = timeValues;
    // Axes in the page's text colour, so that a dark page (prefers-color-
    // scheme) keeps them readable.
    var fg = getComputedStyle(document.body).color;
    base.axes.forEach(function (a) {
      a.stroke = fg;
      a.ticks = { stroke: fg, width: 1 };
    });
    return base;
  }

  // chartData is what a chart draws: the window of seconds, then the
  // points of the forecast ahead after the newest one. Measured series
  // are null ahead; the ahead series are null in the past but at the
  // newest second, where they start.
  function chartData(s, kind) {
    var d = s.data, a = s.ahead, n = d.t.length, last = n ? d.t[n - 1] : null;
    var idx = [];
    if (a && last !== null) {
      for (var i = 0; i < a.t.length; i++) if (a.t[i] > last) idx.push(i);
    }
    var pad = idx.map(function () { return null; });
    var x = d.t.concat(idx.map(function (i) { return a.t[i]; }));
    function past(arr) { return pad.length ? arr.concat(pad) : arr; }
    function ahead(key) {
      var out = new Array(n);
      for (var i = 0; i < n; i++) out[i] = null;
      if (a && n && a.t[0] === last) out[n - 1] = a[key][0];
      return out.concat(idx.map(function (i) { return a[key][i]; }));
    }
    if (kind === 'req') return [x, past(d.rps), past(d.forecast), past(d.forecast_hi), ahead('forecast'), ahead('forecast_hi')];
    if (kind === 'cap') {
      return [x, past(d.endpoints), past(d.endpoints_total), past(d.replica_floor), past(d.admission_limit), past(d.in_flight),
        ahead('replica_floor')];
    }
    return [x, past(d.error_pct), past(d.p99_ms)];
  }

  var KINDS = [
    { kind: 'req', title: 'Requests per second: actual, forecast and upper band' },
    { kind: 'cap', title: 'Capacity: endpoints in rotation, replica floor, admission limit, in flight' },
    { kind: 'err', title: 'Errors (%) and p99 latency (ms)' },
  ];

  function chartWidth(box) {
    return Math.max(280, Math.floor(box.parentNode.clientWidth || 420));
  }

  function domId(name) { return 'svc-' + name.replace(/[^A-Za-z0-9_-]/g, '_'); }

  function ensureService(name) {
    var s = ui.services[name];
    if (s) return s;
    var data = { t: [], error_pct: [] };
    FIELDS.forEach(function (f) { data[f] = []; });
    // A service that appears later gets nulls for the seconds before it.
    var t0 = ui.order.length ? ui.services[ui.order[0]].data.t : [];
    for (var i = 0; i < t0.length; i++) {
      data.t.push(t0[i]);
      data.error_pct.push(null);
      FIELDS.forEach(function (f) { data[f].push(null); });
    }
    var id = domId(name);
    var sec = el('section', { id: id, class: 'service', 'data-service': name, 'aria-labelledby': id + '-h' });
    sec.appendChild(el('h2', { id: id + '-h' }, name));
    var summaryP = el('p', { class: 'summary' }, '…');
    sec.appendChild(summaryP);
    var dirDl = el('dl', { class: 'directive-now' });
    sec.appendChild(dirDl);
    var grid = el('div', { class: 'charts' });
    sec.appendChild(grid);
    var table = el('table', { class: 'endpoints' });
    table.appendChild(el('caption', null, 'Endpoints of ' + name + ' now'));
    var thead = el('thead');
    var hr = el('tr');
    ['Endpoint', 'State', 'Health check', 'Weight', 'Directive weight', 'Effective weight', 'In flight',
      'Req/s', 'Errors/s', 'p99 ms', 'Last change'].forEach(function (h, i) {
      hr.appendChild(el('th', { scope: 'col', class: i >= 3 && i <= 9 ? 'num' : '' }, h));
    });
    thead.appendChild(hr);
    table.appendChild(thead);
    var tbody = el('tbody');
    table.appendChild(tbody);
    sec.appendChild(table);
    document.getElementById('services').appendChild(sec);
    var li = el('li');
    li.appendChild(el('a', { href: '#' + id }, name));
    var nav = document.getElementById('nav');
    nav.insertBefore(li, nav.firstChild);

    s = { name: name, data: data, charts: [], boxes: [], section: sec, summaryEl: summaryP, dirEl: dirDl, tbody: tbody };
    // All three figures first, so that the grid has its columns before a
    // chart measures its width.
    KINDS.forEach(function (k) {
      var fig = el('figure');
      var capId = id + '-' + k.kind + '-cap';
      fig.appendChild(el('figcaption', { id: capId }, k.title));
      var box = el('div', { class: 'chart', role: 'img', 'aria-labelledby': capId, 'data-kind': k.kind });
      fig.appendChild(box);
      grid.appendChild(fig);
      s.boxes.push({ box: box, kind: k.kind });
    });
    s.ahead = null;
    s.boxes.forEach(function (b) {
      s.charts.push(new uPlot(chartOpts(name, b.kind, chartWidth(b.box)), chartData(s, b.kind), b.box));
    });
    ui.services[name] = s;
    ui.order.push(name);
    return s;
  }

  function trim(d) {
    var over = d.t.length - WINDOW;
    if (over <= 0) return;
    d.t.splice(0, over);
    d.error_pct.splice(0, over);
    FIELDS.forEach(function (f) { d[f].splice(0, over); });
  }

  function resetSeries() {
    ui.order.forEach(function (name) {
      var d = ui.services[name].data;
      d.t.length = 0;
      d.error_pct.length = 0;
      FIELDS.forEach(function (f) { d[f].length = 0; });
      ui.services[name].ahead = null;
    });
    ui.last = 0;
  }

  function applySeries(r) {
    if (r.last < ui.last) resetSeries(); // the proxy restarted
    var n = r.t.length;
    if (n === 0) return;
    var got = {};
    r.services.forEach(function (sv) {
      got[sv.name] = sv;
      // The ahead comes whole with each new second, and replaces the last.
      ensureService(sv.name).ahead = sv.ahead || null;
    });
    ui.order.forEach(function (name) {
      var d = ui.services[name].data, sv = got[name];
      for (var i = 0; i < n; i++) {
        d.t.push(r.t[i]);
        FIELDS.forEach(function (f) { d[f].push(sv ? sv[f][i] : null); });
        var e = sv ? sv.error_rate[i] : null;
        d.error_pct.push(e === null ? null : e * 100);
      }
      trim(d);
    });
    ui.last = r.last;
  }

  // ---- state: summary line, directive now, endpoint table --------------

  function setReplay(r) {
    var ws = r && Date.parse(r.wall_start) / 1000, vs = r && Date.parse(r.virtual_start) / 1000;
    ui.replay = r && isFinite(ws) && isFinite(vs) && r.factor > 0 ? { ws: ws, vs: vs, factor: r.factor } : null;
    var note = document.getElementById('time-note');
    if (ui.replay) {
      note.textContent = 'Time axis: ' + new Date(vs * 1000).toISOString().slice(0, 10) + ' as replayed, ×' + num(r.factor, 0) +
        ' (a replayed minute per ' + num(60 / r.factor, 2) + ' s of wall clock); request rates per wall-clock second, as the directives write them.';
    } else {
      note.textContent = 'Time axis: UTC.';
    }
  }

  // aheadPeak is the forecast ahead's highest upper band (or forecast)
  // after now: [value, unix s], or null.
  function aheadPeak(s) {
    var a = s.ahead, best = null;
    if (!a) return null;
    for (var i = 1; i < a.t.length; i++) {
      var v = a.forecast_hi[i] !== null ? a.forecast_hi[i] : a.forecast[i];
      if (v !== null && (best === null || v > best[0])) best = [v, a.t[i]];
    }
    return best;
  }

  function endpointState(e) {
    if (e.ejected) return 'ejected' + (e.ejected_until ? ' until ' + isoShort(e.ejected_until).slice(11) : '');
    if (!e.available) return 'unavailable';
    if (e.slow_start) return 'slow start';
    return e.effective_weight > 0 ? 'in rotation' : 'out of rotation';
  }

  function renderState(st) {
    var status = document.getElementById('status');
    var parts = ['configuration ' + (st.config_version || '?')];
    var problem = false;
    if (st.directive_version) parts.push('directive v' + st.directive_version);
    else parts.push('no directive (configured policies)');
    var co = st.coordinator;
    if (!co) parts.push('no coordinator');
    else if (co.degraded) { parts.push('coordinator unreachable since ' + isoShort(co.degraded_since) + ': keeping the last good directive'); problem = true; }
    else parts.push(co.connected ? 'coordinator connected' : 'coordinator connecting');
    if (co && co.rejected) parts.push('refused v' + co.rejected + ': ' + co.reject_error);
    if (ui.replay && st.time) parts.push('replaying ' + new Date(toVirtual(Date.parse(st.time) / 1000) * 1000).toISOString().slice(0, 16).replace('T', ' ') + ' (×' + num(ui.replay.factor, 0) + ')');
    parts.push('updated ' + (st.time ? isoShort(st.time) : '–') + ', every second');
    status.textContent = parts.join(' · ');
    status.className = problem ? 'status problem' : 'status';

    st.services.forEach(function (sv) {
      if (only && sv.name !== only) return;
      var s = ui.services[sv.name];
      if (!s) return;
      var d = s.data;
      var inRot = 0;
      sv.endpoints.forEach(function (e) { if (e.effective_weight > 0) inRot++; });
      var line = [
        num(lastValue(d.rps), 0) + ' req/s',
        'forecast ' + num(lastValue(d.forecast), 0) + ' (upper ' + num(lastValue(d.forecast_hi), 0) + ')',
        (function () {
          var p = aheadPeak(s);
          return p ? 'coming: up to ' + num(p[0], 0) + ' req/s at ' + hhmm(toVirtual(p[1])) + (ui.replay ? ' replayed' : 'Z') : 'nothing forecast ahead';
        })(),
        inRot + ' of ' + sv.endpoints.length + ' endpoints in rotation' + (sv.panic ? ' (panic: health ignored)' : ''),
        sv.admission ? 'admission limit ' + num(sv.admission.limit, 0) + ' (' + sv.admission.in_flight + ' in flight)' : 'no admission control',
        'errors ' + num(lastValue(d.error_pct), 2) + '%',
        'p99 ' + num(lastValue(d.p99_ms), 0) + ' ms',
        sv.slo_violation_minutes + ' SLO-violation minutes in the last ' + Math.round(st.window_seconds / 60) + ' min',
        'policy ' + sv.policy,
      ];
      s.summaryEl.textContent = line.join(' · ');
      s.section.dataset.points = String(d.t.length);
      s.boxes.forEach(function (b) { b.box.setAttribute('aria-label', sv.name + ': ' + line.slice(0, 7).join(', ')); });

      var dl = s.dirEl;
      dl.textContent = '';
      if (sv.directive && sv.directive.fields && sv.directive.fields.length) {
        sv.directive.fields.forEach(function (f) {
          dl.appendChild(el('dt', null, f.field));
          dl.appendChild(el('dd', null, f.value + (f.why ? ' — ' + f.why.text : '')));
        });
      } else {
        dl.appendChild(el('dt', null, 'directive'));
        dl.appendChild(el('dd', null, 'none for this service: it runs its configured policy'));
      }

      var rows = document.createDocumentFragment();
      sv.endpoints.forEach(function (e) {
        var tr = el('tr');
        tr.appendChild(el('th', { scope: 'row' }, e.id));
        tr.appendChild(el('td', null, endpointState(e)));
        tr.appendChild(el('td', null, e.healthy ? 'passing' : 'failing'));
        tr.appendChild(el('td', { class: 'num' }, num(e.weight)));
        tr.appendChild(el('td', { class: 'num' }, e.directive_weight === undefined ? '–' : num(e.directive_weight)));
        tr.appendChild(el('td', { class: 'num' }, num(e.effective_weight)));
        tr.appendChild(el('td', { class: 'num' }, e.in_flight));
        tr.appendChild(el('td', { class: 'num' }, e.rps));
        tr.appendChild(el('td', { class: 'num' }, e.errors));
        tr.appendChild(el('td', { class: 'num' }, e.rps > 0 ? num(e.p99_ms, 1) : '–'));
        tr.appendChild(el('td', null, e.last_change || ''));
        rows.appendChild(tr);
      });
      s.tbody.textContent = '';
      s.tbody.appendChild(rows);
    });
  }

  // ---- timeline, incidents, events --------------------------------------

  function reasonItems(dd, why) {
    if (!why) { dd.appendChild(el('div', null, 'why: (no reason recorded)')); return; }
    dd.appendChild(el('div', null, 'why: ' + why.text));
    var facts = [];
    if (why.driver) facts.push('driver ' + why.driver);
    if (why.event) facts.push('event ' + why.event);
    if (why.load_rps) facts.push('load ' + num(why.load_rps) + ' rps' + (why.at ? ' at ' + isoShort(why.at) : ''));
    if (why.per_replica_rps) facts.push('capacity ' + num(why.per_replica_rps) + ' rps per replica');
    if (facts.length) dd.appendChild(el('div', null, 'from: ' + facts.join('; ')));
    if (why.expected_effect) dd.appendChild(el('div', null, 'expected effect: ' + why.expected_effect));
  }

  function changeItem(ch) {
    var li = el('li', { 'data-version': String(ch.version), 'data-seq': String(ch.seq) });
    var head = ch.none ? 'No directive any more: every service runs its configured policy'
      : 'Version ' + ch.version + (ch.change ? ' (change ' + ch.change + ')' : '') +
        (ch.rollback_of ? ', rollback of ' + ch.rollback_of : '') + (ch.initial ? ', running when this proxy\'s UI started' : '');
    li.appendChild(el('h3', null, head));
    li.appendChild(el('p', { class: 'hint' }, 'seen ' + when(ch.seen_at) + (ch.committed_at ? ', committed ' + isoShort(ch.committed_at) : '')));
    var unchanged = [];
    (ch.services || []).forEach(function (cs) {
      if (!cs.changed && !ch.initial) { unchanged.push(cs.name); return; }
      var dl = el('dl');
      dl.appendChild(el('dt', null, 'service ' + cs.name));
      var dd0 = el('dd');
      if (cs.model) dd0.appendChild(el('div', null, 'evidence: model ' + cs.model + (cs.blessed ? ' (blessed)' : ' (not blessed)')));
      if (cs.forecast_peak) dd0.appendChild(el('div', null, 'forecast: upper-band peak ' + num(cs.forecast_peak.hi) + ' rps at ' + when(cs.forecast_peak.at)));
      if (cs.expected_effect) dd0.appendChild(el('div', null, 'expected effect: ' + cs.expected_effect));
      if (dd0.childNodes.length) dl.appendChild(dd0);
      (cs.fields || []).forEach(function (f) {
        dl.appendChild(el('dt', null, f.field + ': ' + f.value));
        var dd = el('dd');
        reasonItems(dd, f.why);
        dl.appendChild(dd);
      });
      li.appendChild(dl);
    });
    if (unchanged.length) li.appendChild(el('p', { class: 'unchanged' }, 'unchanged: ' + unchanged.join(', ')));
    if (ch.diff && ch.diff.length) {
      var det = el('details', { class: 'diff' });
      det.appendChild(el('summary', null, ch.diff.length + (ch.diff_more ? '+' + ch.diff_more : '') + ' field changes'));
      det.appendChild(el('pre', null, ch.diff.map(function (c) {
        return c.path + ': ' + (c.from || '(none)') + ' -> ' + (c.to || '(none)');
      }).join('\n') + (ch.diff_more ? '\n… and ' + ch.diff_more + ' more' : '')));
      li.appendChild(det);
    }
    return li;
  }

  var lastIncidentSig = '', lastEventSig = '';

  function applyTimeline(tl) {
    var list = document.getElementById('changes');
    if (tl.seq < ui.seq) { ui.changes.length = 0; list.textContent = ''; } // the proxy restarted
    tl.changes.forEach(function (ch) {
      if (ui.changes.length && ch.seq <= ui.changes[ui.changes.length - 1].seq) return;
      ui.changes.push(ch);
      list.insertBefore(changeItem(ch), list.firstChild);
    });
    while (ui.changes.length > MAX_CHANGES) ui.changes.shift();
    while (list.childNodes.length > MAX_CHANGES) list.removeChild(list.lastChild);
    ui.seq = tl.seq;
    document.getElementById('changes-empty').hidden = list.childNodes.length > 0;

    document.getElementById('slo-text').textContent = 'A minute violates the SLO when its error rate is above ' +
      num(tl.slo.max_error_rate * 100, 1) + '% or its p99 above ' + num(tl.slo.max_p99_ms, 0) + ' ms.';
    ui.incidents = tl.incidents;
    var sig = JSON.stringify(tl.incidents);
    if (sig !== lastIncidentSig) {
      lastIncidentSig = sig;
      var rows = document.getElementById('incident-rows');
      rows.textContent = '';
      tl.incidents.slice().reverse().forEach(function (inc) {
        var tr = el('tr');
        tr.appendChild(el('td', null, inc.service));
        tr.appendChild(el('td', null, isoShort(inc.start)));
        tr.appendChild(el('td', null, isoShort(inc.end)));
        tr.appendChild(el('td', { class: 'num' }, inc.minutes));
        tr.appendChild(el('td', { class: 'num' }, num(inc.worst_p99_ms, 0) + ' ms' + (inc.latency_minutes ? ' (' + inc.latency_minutes + ' min over)' : '')));
        tr.appendChild(el('td', { class: 'num' }, num(inc.worst_error_rate * 100, 2) + '%' + (inc.error_minutes ? ' (' + inc.error_minutes + ' min over)' : '')));
        tr.appendChild(el('td', null, inc.open ? 'ongoing' : 'over'));
        rows.appendChild(tr);
      });
      if (!tl.incidents.length) {
        var tr = el('tr');
        tr.appendChild(el('td', { colspan: '7' }, 'No SLO violation so far.'));
        rows.appendChild(tr);
      }
    }
    ui.events = tl.events;
    sig = JSON.stringify(tl.events) + (ui.replay ? ui.replay.ws : '');
    if (sig !== lastEventSig) {
      lastEventSig = sig;
      var erows = document.getElementById('event-rows');
      erows.textContent = '';
      // Soonest first.
      tl.events.slice().sort(function (a, b) { return Date.parse(a.at) - Date.parse(b.at); }).forEach(function (ev) {
        var tr = el('tr', { 'data-event': ev.name, 'data-source': ev.source });
        var td = el('td');
        if (ev.title) td.appendChild(el('div', null, ev.title));
        td.appendChild(el('div', { class: ev.title ? 'hint' : '' }, ev.name));
        tr.appendChild(td);
        tr.appendChild(el('td', null, when(ev.at)));
        tr.appendChild(el('td', null, ev.end ? when(ev.end) : '–'));
        tr.appendChild(el('td', null, ev.services && ev.services.length ? ev.services.join(', ') : 'every service'));
        tr.appendChild(el('td', null, eventSource(ev)));
        erows.appendChild(tr);
      });
      if (!tl.events.length) {
        var tr2 = el('tr');
        tr2.appendChild(el('td', { colspan: '5' }, 'No event announced, and none named by a directive.'));
        erows.appendChild(tr2);
      }
    }
  }

  // eventSource says where the UI learnt of an event and which directive
  // fields were sized for it: "calendar; directive v20: scale of cart,
  // catalog".
  function eventSource(ev) {
    var by = ev.named_by || [];
    if (!by.length) return ev.source + (ev.source === 'directive' ? '' : '; no directive sized for it yet');
    var v = 0, fields = {};
    by.forEach(function (r) {
      v = Math.max(v, r.version);
      (fields[r.field] = fields[r.field] || []).push(r.service);
    });
    var parts = Object.keys(fields).sort().map(function (f) { return f + ' of ' + fields[f].sort().join(', '); });
    return (ev.source === 'directive' ? '' : ev.source + '; ') + 'directive v' + v + ': ' + parts.join('; ');
  }

  // ---- loop -------------------------------------------------------------

  function redraw() {
    ui.order.forEach(function (name) {
      var s = ui.services[name];
      s.charts.forEach(function (u, i) { u.setData(chartData(s, KINDS[i].kind)); });
    });
  }

  function poll() {
    var t0 = performance.now();
    var q = (ui.last ? 'since=' + ui.last : 'limit=' + WINDOW) + (only ? '&service=' + encodeURIComponent(only) : '');
    Promise.all([
      getJSON('/api/ui/series?' + q),
      getJSON('/api/ui/timeline?after=' + ui.seq),
      getJSON('/api/ui/state'),
    ]).then(function (r) {
      ui.fetchMs = Math.round(performance.now() - t0);
      setReplay(r[2].replay);
      applyTimeline(r[1]);
      applySeries(r[0]);
      ui.state = r[2];
      renderState(r[2]);
      redraw();
      ui.polls++;
      ui.pollMs = Math.round(performance.now() - t0);
      ui.failures = 0;
      ui.lastError = '';
      document.body.dataset.polls = String(ui.polls);
      if (!ui.ready) {
        ui.ready = true;
        ui.firstDataMs = performance.now();
        document.body.dataset.ready = 'true';
      }
    }).catch(function (e) {
      ui.failures++;
      ui.lastError = String(e && e.message || e);
      var status = document.getElementById('status');
      status.textContent = 'No answer from the proxy (' + ui.failures + ' tries): ' + ui.lastError + '; retrying every second.';
      status.className = 'status problem';
    }).then(function () {
      setTimeout(poll, Math.max(100, POLL_MS - (performance.now() - t0)));
    });
  }

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      ui.order.forEach(function (name) {
        ui.services[name].charts.forEach(function (u, i) {
          u.setSize({ width: chartWidth(ui.services[name].boxes[i].box), height: 200 });
        });
      });
    }, 200);
  });

  // summary is what a test (or a person in the console) reads: per
  // service, how many points each series holds and how many are values.
  function summary() {
    var out = { polls: ui.polls, failures: ui.failures, lastError: ui.lastError, ready: ui.ready,
      fetchMs: ui.fetchMs, pollMs: ui.pollMs, visibility: document.visibilityState,
      firstDataMs: ui.firstDataMs, window: WINDOW, changes: ui.changes.length, incidents: ui.incidents.length,
      events: ui.events.length, canvases: document.querySelectorAll('canvas').length, services: {} };
    out.replay = ui.replay;
    out.axisLabels = ui.axisLabels || [];
    out.eventList = ui.events.map(function (e) { return { name: e.name, title: e.title || '', at: e.at, source: e.source, namedBy: (e.named_by || []).length }; });
    ui.order.forEach(function (name) {
      var s = ui.services[name], d = s.data, o = { points: d.t.length, charts: s.charts.length };
      FIELDS.forEach(function (f) {
        var n = 0, mx = null;
        d[f].forEach(function (v) { if (v !== null && v !== undefined) { n++; if (mx === null || v > mx) mx = v; } });
        o[f] = { values: n, max: mx, length: d[f].length };
      });
      // What the charts hold after now: the request chart's points and
      // its forecast ahead (series 4), the capacity chart's floor ahead
      // (series 6).
      var last = d.t.length ? d.t[d.t.length - 1] : null;
      o.ahead = { points: 0, forecast: 0, forecastMax: null, floor: 0, end: null };
      var req = s.charts[0] && s.charts[0].data, cap = s.charts[1] && s.charts[1].data;
      if (req && last !== null) {
        for (var i = 0; i < req[0].length; i++) {
          if (req[0][i] <= last) continue;
          o.ahead.points++;
          o.ahead.end = req[0][i];
          var v = req[4][i];
          if (v !== null && v !== undefined) { o.ahead.forecast++; o.ahead.forecastMax = Math.max(o.ahead.forecastMax || 0, v); }
          if (cap && cap[0][i] > last && cap[6][i] !== null && cap[6][i] !== undefined) o.ahead.floor++;
        }
      }
      o.now = last;
      o.xMax = s.charts.length ? s.charts[0].scales.x.max : null;
      o.drawnEvents = ui.drawnEvents[name] || [];
      out.services[name] = o;
    });
    return out;
  }

  poll();
})();
