// The txcomet admin page (served at <prefix>/admin).
//
// The figures arrive as events on the reserved channel ~txcomet/admin/live,
// through the txcomet client like any other subscription (whichever
// transport it picks, or ?transport=NAME); the page's ticket is the
// channel's token.  Actions and look-ups call the server API with the
// same ticket (X-Admin-Ticket); the API key never reaches this script.
(function () {
  'use strict';

  var CHANNEL = '~txcomet/admin/live';
  var HISTORY_SECONDS = 120;
  var prefix = location.pathname.replace(/\/admin\/?$/, '');
  var ticket = document.body.getAttribute('data-ticket');
  var params = new URLSearchParams(location.search);
  var forced = params.get('transport');
  var $ = function (id) { return document.getElementById(id); };

  var state = {updates: 0, last: null, previous: {}, points: [], channels: []};
  window.admin = state;

  var client = new TxComet.Client(prefix, {
    transports: forced && TxComet.ORDER.indexOf(forced) >= 0 ? [forced] : undefined,
    share: false
  });
  client.on('state', function (s) {
    $('state').textContent = s || 'idle';
    $('state').className = 'pill ' + (s || '');
  });
  client.on('transport', function (name) {
    $('transport').textContent = name || '…';
    document.body.setAttribute('data-transport', name || '');
  });
  client.subscribe(CHANNEL, update, {token: ticket}).catch(function (e) {
    show('Cannot receive the figures: ' + (e.message || e.code));
  });

  // -- the server API

  function api(method, params) {
    return fetch(prefix + '/api', {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'X-Admin-Ticket': ticket},
      body: JSON.stringify({method: method, params: params || {}})
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw body;
        return body.result;
      });
    });
  }

  function show(text) { $('result').textContent = text; }

  // -- the live figures

  function sum(values) { return values.reduce(function (a, b) { return a + b; }, 0); }
  function deliveriesOf(node) { return sum(Object.keys(node.deliveries || {}).map(function (k) { return node.deliveries[k]; })); }
  function connectionsOf(node) { return sum(Object.keys(node.connections || {}).map(function (k) { return node.connections[k]; })); }

  function rate(key, value, at) {
    var before = state.previous[key];
    state.previous[key] = {value: value, at: at};
    if (!before || at <= before.at || value < before.value) return 0;
    return (value - before.value) / (at - before.at);
  }

  function fmt(n) { return n >= 100 ? Math.round(n).toLocaleString() : (Math.round(n * 10) / 10).toString(); }
  function bytes(n) { return n == null ? '?' : (n / 1048576).toFixed(1) + ' MiB'; }
  function cell(row, text) { var td = document.createElement('td'); td.textContent = text; row.appendChild(td); return td; }

  function update(event) {
    var u = event.data;
    state.updates += 1;
    state.last = u;
    var totals = {connections: 0, sessions: 0, deliveries: 0, publishes: 0, errors: 0};
    var body = $('nodes').tBodies[0];
    body.textContent = '';
    u.nodes.forEach(function (node) {
      var d = rate(node.node + ':d', deliveriesOf(node), u.at);
      var p = rate(node.node + ':p', node.published, u.at);
      var e = rate(node.node + ':e', node.errors, u.at);
      totals.connections += connectionsOf(node);
      totals.sessions += node.sessions;
      totals.deliveries += d; totals.publishes += p; totals.errors += e;
      var row = document.createElement('tr');
      row.setAttribute('data-node', node.node);
      cell(row, node.node);
      cell(row, node.worker == null ? '–' : node.worker);
      cell(row, Math.round(node.uptime) + ' s');
      cell(row, node.sessions);
      cell(row, Object.keys(node.connections).sort().map(function (k) { return k + ' ' + node.connections[k]; }).join(', ') || 'none');
      cell(row, fmt(d)); cell(row, fmt(p)); cell(row, fmt(e));
      cell(row, bytes(node.memory && node.memory.rss));
      body.appendChild(row);
    });
    $('missing').hidden = !u.missing.length;
    $('missing').textContent = u.missing.length ? 'Not answering in time: ' + u.missing.join(', ') : '';
    $('total-nodes').textContent = u.nodes.length;
    $('total-connections').textContent = totals.connections;
    $('total-sessions').textContent = totals.sessions;
    $('total-deliveries').textContent = fmt(totals.deliveries);
    $('total-publishes').textContent = fmt(totals.publishes);
    $('total-errors').textContent = fmt(totals.errors);
    state.points.push({at: u.at, deliveries: totals.deliveries, publishes: totals.publishes});
    while (state.points.length && state.points[0].at < u.at - HISTORY_SECONDS) state.points.shift();
    draw();
    channels(u);
  }

  function channels(u) {
    state.channels = u.channels;
    $('channel-count').textContent = '(' + u.channelCount + ')';
    var body = $('channels').tBodies[0];
    body.textContent = '';
    u.channels.forEach(function (c) {
      var row = document.createElement('tr');
      row.setAttribute('data-channel', c.channel);
      cell(row, c.channel);
      cell(row, c.subscribers);
      var button = document.createElement('button');
      button.textContent = 'inspect';
      button.onclick = function () { inspect(c.channel); };
      cell(row, '').appendChild(button);
      body.appendChild(row);
    });
  }

  function draw() {
    var canvas = $('chart'), g = canvas.getContext('2d');
    var w = canvas.width, h = canvas.height, points = state.points;
    g.clearRect(0, 0, w, h);
    if (points.length < 2) return;
    var top = Math.max(1, Math.max.apply(null, points.map(function (p) { return Math.max(p.deliveries, p.publishes); })));
    var last = points[points.length - 1].at;
    g.fillStyle = '#6b7480';
    g.font = '12px system-ui';
    g.fillText(fmt(top) + '/s', 4, 12);
    [['deliveries', '#2a6fdb'], ['publishes', '#d9822b']].forEach(function (series) {
      g.strokeStyle = series[1];
      g.lineWidth = 2;
      g.beginPath();
      points.forEach(function (p, i) {
        var x = w - (last - p.at) / HISTORY_SECONDS * w;
        var y = h - 4 - p[series[0]] / top * (h - 20);
        if (i) g.lineTo(x, y); else g.moveTo(x, y);
      });
      g.stroke();
    });
  }

  // -- a channel's presence and history

  function inspect(channel) {
    $('inspected').textContent = channel;
    state.inspected = channel;
    api('presence', {channel: channel}).then(function (r) {
      var list = $('presence');
      list.textContent = '';
      if (!r.members.length) list.textContent = 'nobody listed (presence lists sessions that joined with a user)';
      r.members.forEach(function (m) {
        var item = document.createElement('li');
        item.textContent = (m.user || '(anonymous)') + ' · ' + m.client + ' ';
        if (m.user) {
          var kick = document.createElement('button');
          kick.textContent = 'unsubscribe';
          kick.onclick = function () { act('unsubscribe', {user: m.user, channel: channel}); };
          item.appendChild(kick);
        }
        list.appendChild(item);
      });
    }).catch(failed);
    api('history', {channel: channel, limit: 20, order: 'newest'}).then(function (r) {
      var list = $('history');
      list.textContent = '';
      if (!r.events.length) list.textContent = 'no events retained';
      r.events.forEach(function (e) {
        var item = document.createElement('li');
        item.textContent = e.id + '  ' + JSON.stringify(e.data);
        list.appendChild(item);
      });
    }).catch(failed);
  }

  // -- actions

  function failed(error) { show('Refused: ' + (error.error || '') + ' ' + (error.message || error)); }

  function act(method, params) {
    return api(method, params).then(function (result) {
      show(method + ' done' + (result && result.id ? ': ' + result.id : ''));
      if (state.inspected) inspect(state.inspected);
      return result;
    }).catch(failed);
  }

  function fields(form) {
    var out = {};
    new FormData(form).forEach(function (value, name) { if (value !== '') out[name] = value; });
    return out;
  }

  $('publish-form').onsubmit = function (e) {
    e.preventDefault();
    var f = fields(this), data = f.data || '';
    try { data = JSON.parse(data); } catch (err) { /* text */ }
    act('publish', {channel: f.channel, data: data});
  };
  $('disconnect-form').onsubmit = function (e) {
    e.preventDefault();
    act('disconnect', fields(this));
  };
  $('unsubscribe-form').onsubmit = function (e) {
    e.preventDefault();
    act('unsubscribe', fields(this));
  };
})();
