// The txcomet demo: a chat with rooms, presence and typing notices.
//
// Query parameters: user=NAME, room=NAME, transport=NAME (force one).
(function () {
  'use strict';

  var prefix = document.body.getAttribute('data-comet');
  var params = new URLSearchParams(location.search);
  var ROOM = /^[A-Za-z0-9_\-.~:@=+]{1,40}$/;

  var user = params.get('user') || localStorage.getItem('txcomet-demo-user') ||
    'guest-' + Math.floor(1000 + Math.random() * 9000);
  localStorage.setItem('txcomet-demo-user', user);
  var forced = params.get('transport') || '';
  if (TxComet.ORDER.indexOf(forced) < 0) forced = ''; // unknown: let the client choose
  var room = ROOM.test(params.get('room') || '') ? params.get('room') : 'lobby';
  var rooms = ['lobby', 'random', 'dev'];
  if (rooms.indexOf(room) < 0) rooms.push(room);

  var $ = function (id) { return document.getElementById(id); };
  var log = $('log'), online = $('online'), typingLine = $('typing');

  var client = new TxComet.Client(prefix, {
    user: user,
    transports: forced ? [forced] : undefined,
    pollInterval: 500
  });
  var members = {};   // client id -> user name
  var typing = {};    // user -> expiry timer
  var lastTyping = 0;

  window.demo = {client: client, messages: [], recoveries: []};

  // -- status

  client.on('state', function (state) {
    var pill = $('state');
    pill.textContent = state || 'idle';
    pill.className = 'pill ' + (state || '');
    document.body.setAttribute('data-state', state || '');
  });
  client.on('transport', function (name) {
    $('transport').textContent = name || '…';
    document.body.setAttribute('data-transport', name || '');
  });
  client.on('recovery', function (r) {
    window.demo.recoveries.push(r);
    // The server says whether it still had everything since we left.
    if (!r.recovered && r.channel === 'chat/' + room) notice('reconnected; some earlier messages may be missing');
  });
  $('force').value = forced;
  $('force').onchange = function () { go({transport: this.value}); };
  $('user').value = user;
  $('user').onchange = function () {
    var name = this.value.trim();
    if (name) { localStorage.setItem('txcomet-demo-user', name); go({user: name}); }
  };

  function go(change) {
    var next = new URLSearchParams(location.search);
    Object.keys(change).forEach(function (k) {
      if (change[k]) next.set(k, change[k]); else next.delete(k);
    });
    location.search = next.toString();
  }

  // -- rooms

  function drawRooms() {
    var list = $('rooms');
    list.textContent = '';
    rooms.forEach(function (name) {
      var li = document.createElement('li'), a = document.createElement('a');
      a.href = '?' + new URLSearchParams(Object.assign(Object.fromEntries(params), {room: name}));
      a.textContent = '#' + name;
      if (name === room) a.className = 'current';
      a.onclick = function (e) { e.preventDefault(); enter(name); };
      li.appendChild(a);
      list.appendChild(li);
    });
    Array.prototype.forEach.call(document.querySelectorAll('.roomname'), function (el) {
      el.textContent = room;
    });
  }

  $('newroom').onsubmit = function (e) {
    e.preventDefault();
    var name = $('roomname').value.trim();
    if (!ROOM.test(name)) { $('roomname').setCustomValidity('letters, digits and _-.~:@=+'); return; }
    $('roomname').value = '';
    if (rooms.indexOf(name) < 0) rooms.push(name);
    enter(name);
  };

  function enter(name) {
    if (name !== room) {
      client.unsubscribe('chat/' + room);
      client.unsubscribe('typing/' + room);
      room = name;
      params.set('room', name);
      history.replaceState(null, '', '?' + params);
    }
    log.textContent = '';
    members = {};
    drawOnline();
    drawRooms();
    // The room's recent history first, then live messages.
    client.subscribe('chat/' + room, onChat, {since: 'oldest'}).then(function () {
      return client.presence('chat/' + room);
    }).then(function (list) {
      list.forEach(function (m) { members[m.client] = m.user || m.client; });
      drawOnline();
    }).catch(function (error) { notice('error: ' + error.message); });
    client.subscribe('typing/' + room, onTyping);
  }

  // -- messages

  function onChat(event) {
    if (event.channel !== 'chat/' + room) return;
    if (event.type === 'join') {
      members[event.data.client] = event.data.user || event.data.client;
      drawOnline();
      if (event.data.client !== client.clientId) notice((event.data.user || 'someone') + ' joined');
      return;
    }
    if (event.type === 'leave') {
      delete members[event.data.client];
      drawOnline();
      notice((event.data.user || 'someone') + ' left');
      return;
    }
    var data = event.data, who = '?', text;
    if (data && typeof data === 'object') { who = data.user || '?'; text = data.text; }
    else text = data;
    if (typeof text !== 'string') text = JSON.stringify(text);
    window.demo.messages.push({user: who, text: text, id: event.id});
    var li = document.createElement('li'), b = document.createElement('span');
    b.className = 'who';
    b.textContent = who;
    li.appendChild(b);
    li.appendChild(document.createTextNode(text));
    li.setAttribute('data-id', event.id);
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    stopTyping(who);
  }

  function notice(text) {
    var li = document.createElement('li');
    li.className = 'notice';
    li.textContent = text;
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }

  function drawOnline() {
    online.textContent = '';
    var seen = {};
    Object.keys(members).forEach(function (id) {
      var name = members[id];
      if (seen[name]) return;
      seen[name] = true;
      var li = document.createElement('li');
      li.textContent = name;
      if (name === user) li.className = 'me';
      online.appendChild(li);
    });
  }

  // -- typing

  function onTyping(event) {
    var data = event.data;
    if (event.type !== 'event' || !data || data.user === user) return;
    if (data.typing) {
      clearTimeout(typing[data.user]);
      typing[data.user] = setTimeout(function () { stopTyping(data.user); }, 3000);
      drawTyping();
    } else {
      stopTyping(data.user);
    }
  }

  function stopTyping(who) {
    if (!(who in typing)) return;
    clearTimeout(typing[who]);
    delete typing[who];
    drawTyping();
  }

  function drawTyping() {
    var names = Object.keys(typing);
    typingLine.textContent = names.length === 0 ? '\u00a0'
      : names.join(', ') + (names.length === 1 ? ' is' : ' are') + ' typing…';
  }

  $('text').oninput = function () {
    var now = Date.now();
    if (now - lastTyping > 2000 && this.value) {
      lastTyping = now;
      client.publish('typing/' + room, {user: user, typing: true}).catch(function () {});
    }
  };

  $('say').onsubmit = function (e) {
    e.preventDefault();
    var input = $('text'), text = input.value.trim();
    if (!text) return;
    input.value = '';
    lastTyping = 0;
    client.publish('chat/' + room, {user: user, text: text}).catch(function (error) {
      notice('not sent (' + error.code + '): ' + text);
    });
    client.publish('typing/' + room, {user: user, typing: false}).catch(function () {});
  };

  drawRooms();
  enter(room);
})();
