/*
 * txcomet.js: the browser client of a txcomet server.
 *
 *   <script src="/comet/txcomet.js"></script>
 *   <script>
 *     const c = new TxComet.Client('/comet');
 *     c.subscribe('news', (event) => console.log(event.data));
 *     c.publish('news', {headline: 'hello'});
 *   </script>
 *
 * or, as an ES module:  import {Client} from '/comet/txcomet.mjs';
 *
 * The client joins through the control channel (POST <mount>/control),
 * opens one data channel over the first transport that works, in the order
 * TxComet.ORDER (WebSocket, EventSource, XHR streaming, hidden iframe,
 * long-polling, script-tag long-polling, polling), and falls back to the
 * next when one fails or never delivers.  It reconnects with exponential
 * backoff and jitter, resuming from the last event it saw, so nothing is
 * lost or repeated; when the server lost its session it joins again and
 * resumes every channel from history, reporting whether that was complete.
 * Tabs of one page share one data channel (BroadcastChannel + Web Locks),
 * and a page that goes away says so at once (navigator.sendBeacon).
 *
 * States (client.state): null (idle), "ready" (connecting), "joined" (has a
 * session, data channel not open), "listening" (data channel delivering),
 * "error" (connection lost, retrying after a backoff), "abort" (gave up:
 * the server closed the session for good, or no transport is allowed).
 */
(function (global) {
  'use strict';

  var VERSION = '0.1.0';
  // Loaded twice (a script tag and txcomet.mjs): keep the first, whose
  // clients are running.
  if (global.TxComet && global.TxComet.version === VERSION) return;
  var ORDER = ['ws', 'sse', 'xhr-stream', 'iframe', 'longpoll', 'jsonp', 'poll'];
  var STATES = [null, 'ready', 'joined', 'listening', 'error', 'abort'];
  // Close reasons after which the session still exists.
  var CHANNEL_REASONS = {recycle: true, replaced: true};

  // Callbacks that script tags and iframes call by name: __txcomet.<name>.
  var registry = global.__txcomet || (global.__txcomet = {});
  var sequence = 0;

  function register(prefix, fn) {
    var name = prefix + (++sequence) + '_' + Math.floor(Math.random() * 1e6);
    registry[name] = fn;
    return {
      name: '__txcomet.' + name,
      free: function () { delete registry[name]; }
    };
  }

  function parseId(id) {
    var i = typeof id === 'string' ? id.lastIndexOf('-') : -1;
    if (i < 1) return null;
    return {epoch: id.slice(0, i), offset: parseInt(id.slice(i + 1), 10)};
  }

  // Whether event id `id` comes after `than` (a new epoch always does).
  function isNewer(id, than) {
    if (!than) return true;
    var a = parseId(id), b = parseId(than);
    if (!a || !b) return true;
    if (a.epoch !== b.epoch) return true;
    return a.offset > b.offset;
  }

  function isPattern(name) {
    return name.split('/').some(function (s) { return s === '*' || s === '**'; });
  }

  // Channel pattern matching: "*" is one segment, a final "**" one or more.
  function matches(pattern, channel) {
    if (pattern === channel) return true;
    var p = pattern.split('/'), c = channel.split('/');
    for (var i = 0; i < p.length; i++) {
      if (p[i] === '**' && i === p.length - 1) return c.length > i;
      if (i >= c.length) return false;
      if (p[i] !== '*' && p[i] !== c[i]) return false;
    }
    return p.length === c.length;
  }

  function absolute(url) {
    try { return new URL(url, global.location ? global.location.href : undefined).href; }
    catch (e) { return url; }
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v === undefined || v === null) return;
      (Array.isArray(v) ? v : [v]).forEach(function (x) {
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(x));
      });
    });
    return parts.join('&');
  }

  function CometError(code, message, status) {
    var e = new Error(message || code);
    e.name = 'CometError';
    e.code = code;
    e.status = status || 0;
    return e;
  }

  function errorFrom(body, status) {
    if (body && typeof body.error === 'string') {
      var e = CometError(body.error, body.message, body.status || status);
      // session_closed (410) says why, and whether to join again
      if (body.reason !== undefined) e.reason = body.reason;
      if (body.reconnect !== undefined) e.reconnect = body.reconnect;
      return e;
    }
    return CometError('network', 'The server could not be reached (' + (status || 'no answer') + ').', status);
  }

  // ---- transports ---------------------------------------------------------
  //
  // A transport carries one data channel.  It calls, on its client:
  //   _opened(t)          the channel is up (headers, prelude or first answer)
  //   _received(t, msgs)  messages (objects), in order
  //   _ended(t, info)     the channel is over: info.error (a CometError)
  // and is stopped with t.stop().  One-shot transports loop by themselves,
  // asking client._dataURL() for the current position before every request.

  function LongPoll(client, name, interval) {
    this.oneShot = true;
    this.client = client;
    this.name = name;
    this.interval = interval;
    this.stopped = false;
    this.abort = null;
    this.timer = null;
  }
  LongPoll.prototype.start = function () { this._ask(); };
  LongPoll.prototype._ask = function () {
    var self = this, client = this.client;
    if (this.stopped) return;
    var controller = typeof AbortController !== 'undefined' ? new AbortController() : null;
    this.abort = controller;
    fetch(client._dataURL(this.name), {
      cache: 'no-store', credentials: client._credentials,
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = JSON.parse(text); } catch (e) { /* handled below */ }
        if (!response.ok || !Array.isArray(body)) throw errorFrom(body, response.status);
        return body;
      });
    }).then(function (msgs) {
      if (self.stopped) return;
      client._opened(self);
      client._received(self, msgs);
      if (self.stopped) return;
      if (self.interval) self.timer = setTimeout(function () { self._ask(); }, self.interval);
      else self._ask();
    }, function (error) {
      if (self.stopped) return;
      self.stopped = true;
      client._ended(self, {error: error.code ? error : CometError('network', String(error))});
    });
  };
  LongPoll.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.abort) { try { this.abort.abort(); } catch (e) { /* gone */ } }
  };

  function ScriptPoll(client) {
    this.oneShot = true;
    this.client = client;
    this.name = 'jsonp';
    this.stopped = false;
    this.script = null;
    this.callback = null;
  }
  ScriptPoll.prototype.start = function () { this._ask(); };
  ScriptPoll.prototype._ask = function () {
    var self = this, client = this.client, answered = false;
    if (this.stopped) return;
    var callback = register('j', function (body) {
      answered = true;
      cleanup();
      if (self.stopped) return;
      if (!Array.isArray(body)) {
        self.stopped = true;
        client._ended(self, {error: errorFrom(body, body && body.status)});
        return;
      }
      client._opened(self);
      client._received(self, body);
      if (!self.stopped) setTimeout(function () { self._ask(); }, 0);
    });
    var script = document.createElement('script');
    function cleanup() {
      callback.free();
      script.onload = script.onerror = null;
      if (script.parentNode) script.parentNode.removeChild(script);
      if (self.script === script) self.script = null;
    }
    function failed() {
      if (answered) return;
      cleanup();
      if (self.stopped) return;
      self.stopped = true;
      client._ended(self, {error: CometError('network', 'The script request failed.')});
    }
    script.async = true;
    script.onerror = failed;
    script.onload = failed; // ran without calling back: not a txcomet answer
    script.src = client._dataURL('jsonp', {callback: callback.name});
    this.script = script;
    this.callback = callback;
    (document.head || document.documentElement).appendChild(script);
  };
  ScriptPoll.prototype.stop = function () {
    this.stopped = true;
    // A pending request may still answer: leave a no-op in its place.
    if (this.script && this.callback) {
      var name = this.callback.name.split('.')[1];
      registry[name] = function () { delete registry[name]; };
    }
    if (this.script) {
      this.script.onload = this.script.onerror = null;
      if (this.script.parentNode) this.script.parentNode.removeChild(this.script);
      this.script = null;
    }
  };

  function XHRStream(client) {
    this.client = client;
    this.name = 'xhr-stream';
    this.stopped = false;
    this.xhr = null;
    this.seen = 0;
  }
  XHRStream.prototype.start = function () {
    var self = this, client = this.client;
    var xhr = this.xhr = new XMLHttpRequest();
    xhr.open('GET', client._dataURL('xhr-stream'), true);
    xhr.withCredentials = client._credentials === 'include';
    xhr.onprogress = function () { self._read(false); };
    xhr.onreadystatechange = function () {
      if (xhr.readyState === 3) self._read(false);
    };
    xhr.onload = function () { self._read(true); self._finish(null); };
    xhr.onerror = function () { self._finish(CometError('network', 'The stream failed.')); };
    xhr.send();
  };
  XHRStream.prototype._read = function (done) {
    var xhr = this.xhr;
    if (this.stopped || xhr.status !== 200) return;
    this.client._opened(this);
    var text = xhr.responseText, end = text.lastIndexOf('\n');
    if (end < this.seen) return;
    var chunk = text.slice(this.seen, end + 1);
    this.seen = end + 1;
    var msgs = [];
    chunk.split('\n').forEach(function (line) {
      if (/\S/.test(line)) msgs.push(JSON.parse(line));
    });
    if (msgs.length) this.client._received(this, msgs);
  };
  XHRStream.prototype._finish = function (error) {
    if (this.stopped) return;
    var xhr = this.xhr;
    if (!error && xhr.status !== 200) {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      error = errorFrom(body, xhr.status);
    }
    this.stopped = true;
    this.client._ended(this, {error: error});
  };
  XHRStream.prototype.stop = function () {
    this.stopped = true;
    if (this.xhr) { try { this.xhr.abort(); } catch (e) { /* gone */ } }
  };

  function IFrameStream(client) {
    this.client = client;
    this.name = 'iframe';
    this.stopped = false;
    this.frame = null;
    this.callback = null;
  }
  IFrameStream.prototype.start = function () {
    var self = this, client = this.client;
    this.callback = register('f', function (msg) {
      if (self.stopped) return;
      if (msg && msg.type === 'error') { // the request was refused
        self.stopped = true;
        self._remove();
        client._ended(self, {error: errorFrom(msg, msg.status)});
        return;
      }
      client._opened(self);
      client._received(self, [msg]);
    });
    var frame = this.frame = document.createElement('iframe');
    frame.style.cssText = 'position:absolute;width:0;height:0;border:0;visibility:hidden';
    frame.setAttribute('aria-hidden', 'true');
    frame.onload = function () {
      if (self.stopped) return;
      self.stopped = true;
      self._remove();
      client._ended(self, {error: null});
    };
    frame.src = client._dataURL('iframe', {callback: this.callback.name});
    (document.body || document.documentElement).appendChild(frame);
  };
  // Whether the prelude has arrived (the frame's document holds a script).
  IFrameStream.prototype.started = function () {
    try {
      var doc = this.frame.contentDocument;
      return !!doc && doc.getElementsByTagName('script').length > 0;
    } catch (e) {
      return true; // cross-origin: we cannot see, so trust it
    }
  };
  IFrameStream.prototype._remove = function () {
    if (this.callback) this.callback.free();
    if (this.frame) {
      this.frame.onload = null;
      try { this.frame.src = 'about:blank'; } catch (e) { /* gone */ }
      if (this.frame.parentNode) this.frame.parentNode.removeChild(this.frame);
      this.frame = null;
    }
  };
  IFrameStream.prototype.stop = function () {
    this.stopped = true;
    this._remove();
  };

  function EventSourceStream(client) {
    this.client = client;
    this.name = 'sse';
    this.stopped = false;
    this.source = null;
  }
  EventSourceStream.prototype.start = function () {
    var self = this, client = this.client;
    var source = this.source = new EventSource(client._dataURL('sse'), {
      withCredentials: client._credentials === 'include'
    });
    function onMessage(e) {
      if (self.stopped) return;
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      client._received(self, [msg]);
    }
    source.onopen = function () { if (!self.stopped) client._opened(self); };
    source.onmessage = onMessage;
    ['join', 'leave', 'close', 'heartbeat'].forEach(function (type) {
      source.addEventListener(type, onMessage);
    });
    source.onerror = function () {
      if (self.stopped) return;
      // Reconnection is ours, not EventSource's: it would not know the
      // session is gone, nor fall back.
      self.stopped = true;
      source.close();
      client._ended(self, {error: null});
    };
  };
  EventSourceStream.prototype.stop = function () {
    this.stopped = true;
    if (this.source) this.source.close();
  };

  function WebSocketChannel(client) {
    this.client = client;
    this.name = 'ws';
    this.stopped = false;
    this.socket = null;
    this.open = false;
  }
  WebSocketChannel.prototype.start = function () {
    var self = this, client = this.client;
    var url = client._dataURL('ws').replace(/^http/, 'ws');
    var socket = this.socket = new WebSocket(url);
    socket.onopen = function () {
      if (self.stopped) return;
      self.open = true;
      client._opened(self);
    };
    socket.onmessage = function (e) {
      if (self.stopped) return;
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.type === 'reply' || msg.type === 'error' && msg.ref !== undefined) {
        client._wsReply(msg);
        return;
      }
      if (msg.type === 'error') {
        self.stopped = true;
        socket.close();
        client._ended(self, {error: errorFrom(msg, msg.status)});
        return;
      }
      client._received(self, [msg]);
    };
    socket.onclose = function (e) {
      self.open = false;
      if (self.stopped) return;
      self.stopped = true;
      client._ended(self, {
        error: e.code === 1000 || e.code === 1001 ? null
          : CometError('network', 'The WebSocket closed (' + e.code + (e.reason ? ' ' + e.reason : '') + ').')
      });
    };
  };
  WebSocketChannel.prototype.send = function (msg) {
    this.socket.send(JSON.stringify(msg));
  };
  WebSocketChannel.prototype.stop = function () {
    this.stopped = true;
    this.open = false;
    if (this.socket) { try { this.socket.close(1000); } catch (e) { /* gone */ } }
  };

  var TRANSPORTS = {
    ws: function (c) { return typeof WebSocket !== 'undefined' ? new WebSocketChannel(c) : null; },
    sse: function (c) { return typeof EventSource !== 'undefined' ? new EventSourceStream(c) : null; },
    'xhr-stream': function (c) { return new XHRStream(c); },
    iframe: function (c) { return typeof document !== 'undefined' ? new IFrameStream(c) : null; },
    longpoll: function (c) { return new LongPoll(c, 'longpoll', 0); },
    jsonp: function (c) { return typeof document !== 'undefined' ? new ScriptPoll(c) : null; },
    poll: function (c) { return new LongPoll(c, 'poll', c.options.pollInterval); }
  };

  // ---- the client ---------------------------------------------------------

  /**
   * A connection to the txcomet server mounted at `url` (e.g. "/comet").
   *
   * options:
   *   transports    the transports to try, in order (default TxComet.ORDER);
   *                 give one to force it.
   *   user, info    who this client is, for presence (info: an object).
   *   auth          a connection token (JWT) the server checks.
   *   getToken      a function returning a token (or a Promise of one):
   *                 called before every join and before the token expires
   *                 (the new one is sent with a refresh); after a
   *                 token_expired close the client joins again with a
   *                 fresh token and resumes, losing nothing.
   *   share         share one data channel between the tabs of this page
   *                 (default true where BroadcastChannel and Web Locks exist).
   *   control       "post" or "script" (GET with script tags, for a server
   *                 on another origin that does not allow yours by CORS);
   *                 default "post".
   *   pollInterval  ms between short polls (default 1000).
   *   backoff       {min: ms, max: ms} reconnection delays (250, 15000).
   *   connectTimeout ms a streaming transport has to open (default 10000).
   *   publishRetries times a publish refused as "unavailable" (the server's
   *                 bus could not distribute it, so it was not published)
   *                 is tried again with the backoff (default 5).
   *   leaveOnUnload leave when the page goes away (default true).
   *   credentials   "include" to send cookies cross-origin.
   */
  function Client(url, options) {
    options = options || {};
    this.url = absolute(url).replace(/\/+$/, '');
    this.options = {
      transports: (options.transports || ORDER).slice(),
      user: options.user,
      info: options.info,
      auth: options.auth,
      getToken: options.getToken,
      presence: options.presence,
      share: options.share !== undefined ? options.share
        : typeof BroadcastChannel !== 'undefined' && !!(global.navigator && navigator.locks),
      control: options.control || 'post',
      pollInterval: options.pollInterval || 1000,
      backoff: {
        min: (options.backoff && options.backoff.min) || 250,
        max: (options.backoff && options.backoff.max) || 15000
      },
      connectTimeout: options.connectTimeout || 10000,
      publishRetries: options.publishRetries !== undefined ? options.publishRetries : 5,
      leaveOnUnload: options.leaveOnUnload !== false
    };
    this.options.transports.forEach(function (name) {
      if (!TRANSPORTS[name]) throw new Error('Unknown transport ' + JSON.stringify(name) + '; the transports are ' + ORDER.join(', '));
    });
    this._credentials = options.credentials || 'same-origin';
    this.state = null;
    this.transport = null;    // the name of the transport in use
    this.session = null;      // the session id (shared by every tab)
    this.clientId = null;     // the public id others see in presence
    this.role = null;         // "leader" (holds the data channel) or "follower"
    this._listeners = {};
    this._subs = {};          // pattern -> {handlers, since, ack}
    this._last = null;        // the last event id seen on the data channel
    this._lastByChannel = {}; // channel -> last event id seen (resume point)
    this._t = null;           // the current transport object
    this._tIndex = 0;
    this._failures = 0;       // consecutive failures of the current transport
    this._attempt = 0;        // consecutive reconnections (for the backoff)
    this._timer = null;
    this._openTimer = null;
    this._joining = null;     // Promise of the session while joining
    this.expires = null;      // when the connection token expires (s since the epoch)
    this._refreshTimer = null;
    this._refs = 0;
    this._pending = {};       // ref -> {resolve, reject} for WS and tab requests
    this._started = false;
    // sharing between tabs
    this._tab = Math.random().toString(36).slice(2);
    this._bc = null;
    this._releaseLock = null;
    this._followerSubs = {};  // tab -> {pattern: true}, on the leader
    this._onUnload = this._unload.bind(this);
  }

  Client.prototype.on = function (name, fn) {
    (this._listeners[name] || (this._listeners[name] = [])).push(fn);
    return this;
  };
  Client.prototype.off = function (name, fn) {
    var list = this._listeners[name] || [];
    var i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
    return this;
  };
  Client.prototype._emit = function (name) {
    var args = Array.prototype.slice.call(arguments, 1);
    (this._listeners[name] || []).slice().forEach(function (fn) {
      try { fn.apply(null, args); } catch (e) { setTimeout(function () { throw e; }, 0); }
    });
  };
  Client.prototype._setState = function (state) {
    if (state === this.state) return;
    var previous = this.state;
    this.state = state;
    this._emit('state', state, previous);
    if (this.role === 'leader') this._broadcast({t: 'state', state: state, transport: this.transport});
  };
  Client.prototype._setTransport = function (name) {
    if (name === this.transport) return;
    this.transport = name;
    this._emit('transport', name);
    if (this.role === 'leader') this._broadcast({t: 'state', state: this.state, transport: name});
  };

  /** Start connecting (subscribe and publish do it for you). */
  Client.prototype.connect = function () {
    if (this._started) return;
    this._started = true;
    if (typeof global.addEventListener === 'function' && this.options.leaveOnUnload) {
      global.addEventListener('pagehide', this._onUnload);
    }
    this._setState('ready');
    if (this.options.share && typeof BroadcastChannel !== 'undefined' && global.navigator && navigator.locks) {
      this._share();
    } else {
      this._lead();
    }
  };

  /**
   * Receive events on `channel` (a name, or a pattern with * and **).
   * `handler(event)` gets each envelope: {type, channel, id, data}, where
   * type is "event", or "join"/"leave" for presence notices.
   * options.since: an event id to resume after, or "oldest" for the
   * channel's retained history first.  options.token: a channel token for
   * a private channel (docs/auth.md); options.getToken: a function given
   * the channel that returns one (or a Promise of one), asked every time
   * the subscription is made.
   * Resolves with the server's acknowledgement ({channel, position}).
   */
  Client.prototype.subscribe = function (channel, handler, options) {
    var sub = this._subs[channel];
    if (!sub) sub = this._subs[channel] = {handlers: [], since: null, ack: null};
    if (handler) sub.handlers.push(handler);
    // A private channel's token: given, or asked of a function (which may
    // return a Promise) every time the subscription is made, after a
    // rejoin too.
    if (options && options.token) sub.token = options.token;
    if (options && options.getToken) sub.getToken = options.getToken;
    this.connect();
    if (!sub.ack) sub.ack = this._subscribeRemote(channel, (options && options.since) || null);
    return sub.ack;
  };

  /** Stop receiving `channel` (every handler, or just `handler`). */
  Client.prototype.unsubscribe = function (channel, handler) {
    var sub = this._subs[channel];
    if (!sub) return Promise.resolve({channel: channel, subscribed: false});
    if (handler) {
      var i = sub.handlers.indexOf(handler);
      if (i >= 0) sub.handlers.splice(i, 1);
      if (sub.handlers.length) return Promise.resolve({channel: channel, subscribed: true});
    }
    delete this._subs[channel];
    if (this.role === 'follower') {
      return this._ask({op: 'unsubscribe', channel: channel});
    }
    if (this._stillWanted(channel)) return Promise.resolve({channel: channel, subscribed: true});
    return this._op({op: 'unsubscribe', channel: channel});
  };

  /**
   * Publish `data` (any JSON value) on `channel`; resolves with {id}.  A
   * publish refused as "unavailable" was not published: it is tried again
   * (options.publishRetries times, with the backoff) before it rejects.
   */
  Client.prototype.publish = function (channel, data) {
    var self = this, tries = 0;
    function attempt() {
      self.connect();
      var message = {op: 'publish', channel: channel, data: data};
      var sent = self.role === 'follower' ? self._ask(message) : self._op(message);
      return sent.catch(function (error) {
        if (error.code !== 'unavailable' || tries >= self.options.publishRetries) throw error;
        var b = self.options.backoff;
        var delay = Math.min(b.max, b.min * Math.pow(2, tries++)) * (0.5 + Math.random() / 2);
        return new Promise(function (resolve) { setTimeout(resolve, delay); }).then(attempt);
      });
    }
    return attempt();
  };

  /** Who is on `channel`: resolves with [{client, user, info}, ...]. */
  Client.prototype.presence = function (channel) {
    this.connect();
    var message = {op: 'presence', channel: channel};
    return (this.role === 'follower' ? this._ask(message) : this._op(message)).then(function (r) {
      return r.members;
    });
  };

  /** Leave: the server frees the session and its data channel at once. */
  Client.prototype.leave = function () {
    var session = this.session;
    this._stop();
    if (this.role === 'leader' && session) {
      this._send({op: 'leave', session: session}, true);
      this._broadcast({t: 'gone'});
    } else if (this.role === 'follower') {
      this._broadcast({t: 'bye', tab: this._tab});
    }
    this._teardown();
    this._subs = {};
    this._lastByChannel = {};
    this._setState(null);
  };

  Client.prototype._unload = function (e) {
    if (e && e.persisted) return; // kept in the back/forward cache
    if (!this._started) return;
    this.leave();
  };

  Client.prototype._teardown = function () {
    this._started = false;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    this.session = null;
    this.clientId = null;
    this._last = null;
    if (typeof global.removeEventListener === 'function') global.removeEventListener('pagehide', this._onUnload);
    if (this._bc) { this._bc.close(); this._bc = null; }
    if (this._releaseLock) { this._releaseLock(); this._releaseLock = null; }
    var pending = this._pending;
    this._pending = {};
    Object.keys(pending).forEach(function (ref) { pending[ref].reject(CometError('left', 'The client left.')); });
    this.role = null;
    this.transport = null;
  };

  Client.prototype._stop = function () {
    clearTimeout(this._timer);
    clearTimeout(this._openTimer);
    clearTimeout(this._watchdog);
    this._timer = this._openTimer = null;
    if (this._t) { var t = this._t; this._t = null; t.stop(); }
  };

  // -- the control channel

  Client.prototype._controlURL = function () { return this.url + '/control'; };

  /** Send one control message; resolves with the reply, rejects with a CometError. */
  Client.prototype._send = function (message, unloading) {
    var body = JSON.stringify(message);
    if (unloading && global.navigator && typeof navigator.sendBeacon === 'function') {
      if (navigator.sendBeacon(this._controlURL(), body)) return Promise.resolve({ok: true});
    }
    if (this.options.control === 'script') return this._sendScript(message);
    return fetch(this._controlURL(), {
      method: 'POST', body: body, cache: 'no-store', credentials: this._credentials,
      keepalive: !!unloading,
      headers: {'Content-Type': 'text/plain;charset=UTF-8'} // a simple request: no preflight
    }).then(function (response) {
      return response.text().then(function (text) {
        var reply = null;
        try { reply = JSON.parse(text); } catch (e) { /* handled below */ }
        if (!response.ok || !reply || !reply.ok) throw errorFrom(reply, response.status);
        return reply;
      });
    }, function (error) {
      throw CometError('network', 'The control channel failed: ' + error.message);
    });
  };

  Client.prototype._sendScript = function (message) {
    return new Promise(function (resolve, reject) {
      var params = {};
      Object.keys(message).forEach(function (k) {
        var v = message[k];
        params[k] = k === 'data' || k === 'info' ? JSON.stringify(v)
          : typeof v === 'boolean' ? String(v) : v;
      });
      var script = document.createElement('script');
      var callback = register('c', function (reply) {
        done();
        if (reply && reply.ok) resolve(reply); else reject(errorFrom(reply, reply && reply.status));
      });
      function done() {
        callback.free();
        script.onload = script.onerror = null;
        if (script.parentNode) script.parentNode.removeChild(script);
      }
      script.onerror = script.onload = function () {
        done();
        reject(CometError('network', 'The control script failed.'));
      };
      params.callback = callback.name;
      script.src = this._controlURL() + '?' + query(params);
      (document.head || document.documentElement).appendChild(script);
    }.bind(this));
  };

  /**
   * Run a session operation (subscribe, unsubscribe, publish, presence):
   * over the WebSocket when that is the open data channel (the session is
   * implied by the connection), else through the control channel.
   */
  Client.prototype._op = function (message) {
    var self = this;
    return this._sessionReady().then(function () {
      var t = self._t;
      if (t && t.name === 'ws' && t.open) {
        return new Promise(function (resolve, reject) {
          var ref = 'r' + (++self._refs);
          self._pending[ref] = {resolve: resolve, reject: reject};
          t.send(Object.assign({ref: ref}, message));
        });
      }
      return self._send(Object.assign({session: self.session}, message));
    }).catch(function (error) {
      if (error.code === 'session_closed' && error.reconnect === false && self._started) {
        self._closed(self._t, {reason: error.reason, reconnect: false});
        throw error;
      }
      if ((error.code === 'unknown_session' || error.code === 'session_closed') && self._started) {
        // The server forgot us: join again (resuming), then retry once.
        self._sessionLost();
        return self._sessionReady().then(function () {
          return self._send(Object.assign({session: self.session}, message));
        });
      }
      throw error;
    });
  };

  Client.prototype._wsReply = function (msg) {
    var waiting = this._pending[msg.ref];
    if (!waiting) return;
    delete this._pending[msg.ref];
    if (msg.type === 'reply' && msg.ok) waiting.resolve(msg);
    else waiting.reject(errorFrom(msg, msg.status));
  };

  Client.prototype._sessionReady = function () {
    if (this.session && !this._joining) return Promise.resolve(this.session);
    if (!this._joining) this._lead();
    return this._joining;
  };

  // -- leading: the tab that holds the session and the data channel

  Client.prototype._lead = function () {
    var self = this;
    this.role = 'leader';
    if (this._joining) return;
    this._joining = this._join().then(function (session) {
      self._joining = null;
      self._open();
      return session;
    }, function (error) {
      self._joining = null;
      throw error;
    });
    this._joining.catch(function (error) {
      self._emit('error', error);
      if (error.code === 'forbidden' || error.code === 'invalid_request' ||
          (error.code === 'invalid_token' && !self.options.getToken)) {
        self._stop();
        self._setState('abort');
        return;
      }
      self._retry();
    });
  };

  Client.prototype._join = function () {
    var self = this, o = this.options;
    var message = {op: 'join'};
    if (o.user) message.user = o.user;
    if (o.info) message.info = o.info;
    if (o.presence !== undefined) message.presence = o.presence;
    this._setState('ready');
    var token = o.getToken ? Promise.resolve(o.getToken()) : Promise.resolve(o.auth);
    return token.then(function (auth) {
      if (auth) message.auth = auth;
      return self._send(message);
    }).then(function (reply) {
      if (!self._started) throw CometError('left', 'The client left.');
      self.session = reply.session;
      self._tokenExpires(reply.expires);
      self.clientId = reply.client;
      self._heartbeat = (reply.heartbeat || 25) * 1000;
      // Where the data channel resumes before any event has come: the
      // session's start marker, so that what a connection that died early
      // carried is sent again.
      self._last = reply.last || null;
      self._setState('joined');
      self._broadcast({t: 'session', session: reply.session, client: reply.client});
      // Resume every channel from where this tab left it.
      var patterns = Object.keys(self._subs);
      Object.keys(self._followerSubs).forEach(function (tab) {
        Object.keys(self._followerSubs[tab]).forEach(function (p) {
          if (patterns.indexOf(p) < 0) patterns.push(p);
        });
      });
      return Promise.all(patterns.map(function (pattern) {
        var sub = self._subs[pattern];
        var since = sub ? self._since(pattern) : null;
        return self._subscribeOnSession(pattern, since).then(function (ack) {
          if (sub) self._acked(pattern, ack);
        });
      })).then(function () { return reply.session; });
    });
  };

  // The connection token lasts until `expires` (seconds since the epoch):
  // with getToken, refresh it halfway through what is left (at most 30 s
  // early).
  Client.prototype._tokenExpires = function (expires) {
    var self = this;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    this.expires = expires || null;
    if (!expires || !this.options.getToken) return;
    var left = expires * 1000 - Date.now();
    this._refreshTimer = setTimeout(function () { self._refresh(); }, Math.max(0, left - Math.min(30000, left / 2)));
  };

  Client.prototype._refresh = function () {
    var self = this, session = this.session;
    this._refreshTimer = null;
    if (!session || !this._started) return;
    Promise.resolve(this.options.getToken()).then(function (token) {
      if (self.session !== session) return null;
      return self._op({op: 'refresh', token: token});
    }).then(function (reply) {
      if (reply && self.session === session) self._tokenExpires(reply.expires);
    }, function (error) {
      // The session ends at expiry (token_expired) and is joined again.
      self._emit('error', error);
    });
  };

  // Where a channel resumes: the last event seen on it, else the position
  // when it was subscribed (wildcard patterns cannot resume).
  Client.prototype._since = function (pattern) {
    if (isPattern(pattern)) return null;
    return this._lastByChannel[pattern] || (this._subs[pattern] && this._subs[pattern].since) || null;
  };

  Client.prototype._acked = function (pattern, ack) {
    var sub = this._subs[pattern];
    if (sub && !sub.since && ack && ack.position) sub.since = ack.position;
    if (ack && ack.recovered !== undefined) {
      this._emit('recovery', {channel: pattern, recovered: ack.recovered});
    }
  };

  // The subscribe message for `pattern`: where it resumes, and the channel
  // token its subscription was given (a Promise of the message).
  Client.prototype._subscribeMessage = function (pattern, since) {
    var message = {op: 'subscribe', channel: pattern};
    if (since) message.since = since;
    var sub = this._subs[pattern];
    var token = sub && (sub.getToken ? sub.getToken(pattern) : sub.token);
    return Promise.resolve(token).then(function (t) {
      if (t) message.token = t;
      return message;
    });
  };

  Client.prototype._subscribeOnSession = function (pattern, since) {
    var self = this;
    return this._subscribeMessage(pattern, since).then(function (message) {
      return self._send(Object.assign({session: self.session}, message));
    });
  };

  Client.prototype._subscribeRemote = function (pattern, since) {
    var self = this;
    var request = this.role === 'follower'
      ? this._subscribeMessage(pattern, since).then(function (message) { return self._ask(message); })
      : this._sessionReady().then(function () {
          return self._subscribeMessage(pattern, since);
        }).then(function (message) { return self._op(message); });
    return request.then(function (ack) {
      self._acked(pattern, ack);
      return ack;
    }, function (error) {
      var sub = self._subs[pattern];
      if (sub) sub.ack = null;
      throw error;
    });
  };

  Client.prototype._stillWanted = function (pattern) {
    if (this._subs[pattern]) return true;
    var tabs = this._followerSubs;
    return Object.keys(tabs).some(function (tab) { return tabs[tab][pattern]; });
  };

  Client.prototype._dataURL = function (name, extra) {
    var params = {session: this.session};
    if (this._last) params.last = this._last;
    if (extra) Object.keys(extra).forEach(function (k) { params[k] = extra[k]; });
    return this.url + '/' + name + '?' + query(params);
  };

  /** Open the data channel over the current transport. */
  Client.prototype._open = function () {
    var self = this;
    this._stop();
    if (!this._started || !this.session) return;
    var names = this.options.transports;
    var t = null;
    while (this._tIndex < names.length && !(t = TRANSPORTS[names[this._tIndex]](this))) this._tIndex++;
    if (!t) {
      this._setState('abort');
      this._emit('error', CometError('no_transport', 'None of the transports ' + names.join(', ') + ' can run here.'));
      return;
    }
    this._t = t;
    t.opened = false;
    t.delivered = false;
    this._setTransport(t.name);
    // A transport that cannot open in time (a proxy holding the stream
    // back, a blocked port) counts as failed.
    var wait = this.options.connectTimeout;
    if (t.name === 'longpoll' || t.name === 'jsonp') wait += this._heartbeat || 25000;
    this._openTimer = setTimeout(function () {
      if (self._t !== t || t.opened) return;
      if (t.started && t.started()) { self._opened(t); return; }
      t.stop();
      self._ended(t, {error: CometError('timeout', t.name + ' did not open in time.')});
    }, wait);
    t.start();
    // A held long-poll or script request is listening already, though
    // nothing has come back yet (it may not for a heartbeat interval).
    if (t.oneShot && this._t === t) this._setState('listening');
  };

  // Streams whose heartbeats the page sees (EventSource and WebSocket
  // report a dead connection themselves; an iframe may never say).
  var WATCHED = {'xhr-stream': true, iframe: true};

  // A watched stream silent for longer than the server ever is (two
  // heartbeat intervals, see docs/protocol.md) is dead: reconnect.
  Client.prototype._watch = function (t) {
    var self = this;
    clearTimeout(this._watchdog);
    if (!WATCHED[t.name] || t !== this._t) return;
    this._watchdog = setTimeout(function () {
      if (t !== self._t) return;
      t.stop();
      self._ended(t, {error: CometError('timeout', 'The ' + t.name + ' stream went silent.')});
    }, (this._heartbeat || 25000) * 2 + 3000);
  };

  Client.prototype._opened = function (t) {
    if (t !== this._t || t.opened) return;
    t.opened = true;
    this._watch(t);
    clearTimeout(this._openTimer);
    this._attempt = 0;
    this._setState('listening');
  };

  Client.prototype._received = function (t, msgs) {
    if (t !== this._t) return;
    this._watch(t);
    if (!t.delivered) { t.delivered = true; this._failures = 0; }
    for (var i = 0; i < msgs.length; i++) {
      if (msgs[i] && msgs[i].type === 'close') {
        this._deliver(msgs.slice(0, i));
        t.stop();
        this._closed(t, msgs[i]);
        return;
      }
    }
    this._deliver(msgs);
  };

  /** Take in the events among `msgs`: remember the position, hand them out. */
  Client.prototype._deliver = function (msgs) {
    var events = [];
    for (var i = 0; i < msgs.length; i++) {
      var msg = msgs[i];
      if (!msg || typeof msg !== 'object' || typeof msg.id !== 'string') continue;
      if (isNewer(msg.id, this._last)) this._last = msg.id;
      events.push(msg);
    }
    if (events.length) {
      this._broadcast({t: 'events', events: events});
      this._dispatch(events);
    }
  };

  /** Hand events to this tab's handlers, each once, in order. */
  Client.prototype._dispatch = function (events) {
    var subs = this._subs, lastByChannel = this._lastByChannel;
    for (var i = 0; i < events.length; i++) {
      var event = events[i];
      if (!isNewer(event.id, lastByChannel[event.channel])) continue; // seen already
      var handlers = [];
      Object.keys(subs).forEach(function (pattern) {
        if (matches(pattern, event.channel)) handlers = handlers.concat(subs[pattern].handlers);
      });
      if (!handlers.length) continue;
      lastByChannel[event.channel] = event.id;
      this._emit('message', event);
      for (var j = 0; j < handlers.length; j++) {
        try { handlers[j](event); } catch (e) { (function (e) { setTimeout(function () { throw e; }, 0); })(e); }
      }
    }
  };

  Client.prototype._closed = function (t, msg) {
    var self = this;
    this._t = null;
    clearTimeout(this._openTimer);
    if (msg.reason === 'recycle') {
      this._open(); // same session, from the last event: nothing lost
      return;
    }
    if (!msg.reconnect) {
      this._emit('error', CometError(msg.reason, 'The server closed the connection: ' + msg.reason + '.'));
      this._stop();
      this.session = null;
      this._setState('abort');
      if (this.role === 'leader') this._broadcast({t: 'state', state: 'abort', transport: this.transport});
      return;
    }
    if (CHANNEL_REASONS[msg.reason]) { this._retry(); return; }
    // The session is gone (expired, slow consumer, replay gap, shutdown):
    // join again and resume every channel from history.
    this.session = null;
    this._setState('error');
    this._schedule(function () { self._lead(); });
  };

  Client.prototype._ended = function (t, info) {
    if (t !== this._t) return;
    this._t = null;
    clearTimeout(this._openTimer);
    var error = info.error;
    if (error) this._emit('error', error);
    if (error && error.code === 'unknown_session') { this._sessionLost(); return; }
    if (error && error.code === 'session_closed') {
      // Closed while no channel was open to say so: as if it had.
      this._closed(t, {reason: error.reason, reconnect: error.reconnect !== false});
      return;
    }
    if (t.opened) {
      // It worked and broke (server restart, network change, proxy
      // timeout): reopen on the same session from the last event seen.
      // Broken again and again before anything came through (a proxy that
      // cuts streams) counts against the transport.
      if (!t.delivered && error) this._failed();
      this._retry();
      return;
    }
    // It never opened.  An opaque transport (EventSource, iframe, script
    // tag, WebSocket) cannot say why: ask the server with a short poll,
    // which answers at once with what is waiting, or says the session is
    // gone.  Only a transport that fails while the server and the session
    // are fine counts against it, so an outage or a restart does not make
    // the client give up a good transport.
    var self = this;
    this._stop();
    this._setState('error');
    this._probe().then(function (msgs) {
      if (!self._started) return;
      self._deliver(msgs);
      self._failed();
      self._retry();
    }, function (error) {
      if (!self._started) return;
      if (error.code === 'unknown_session') self._sessionLost();
      else if (error.code === 'session_closed') self._closed(t, {reason: error.reason, reconnect: error.reconnect !== false});
      else self._retry();
    });
  };

  Client.prototype._probe = function () {
    return fetch(this._dataURL('poll'), {cache: 'no-store', credentials: this._credentials}).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = JSON.parse(text); } catch (e) { /* handled below */ }
        if (response.ok && Array.isArray(body)) return body;
        throw errorFrom(body, response.status);
      });
    }, function (error) {
      throw CometError('network', 'The server could not be reached: ' + error.message);
    });
  };

  Client.prototype._failed = function () {
    this._failures++;
    if (this._failures >= 2 && this.options.transports.length > 1) {
      // This transport does not get through here: try the next one.
      this._failures = 0;
      this._attempt = 0; // a fresh transport is tried without the backoff so far
      this._tIndex = (this._tIndex + 1) % this.options.transports.length;
    }
  };

  Client.prototype._sessionLost = function () {
    var self = this;
    var old = this.session;
    this._stop();
    this.session = null;
    if (old) this._send({op: 'leave', session: old}).catch(function () { /* already gone */ });
    this._setState('error');
    this._schedule(function () { self._lead(); });
  };

  Client.prototype._retry = function () {
    var self = this;
    this._stop();
    this._setState('error');
    this._schedule(function () {
      if (self.session) self._open(); else self._lead();
    });
  };

  Client.prototype._schedule = function (fn) {
    var self = this;
    clearTimeout(this._timer);
    var b = this.options.backoff;
    var delay = Math.min(b.max, b.min * Math.pow(2, this._attempt));
    delay = delay / 2 + Math.random() * delay / 2; // jitter: no thundering herd
    this._attempt++;
    this._timer = setTimeout(function () {
      self._timer = null;
      if (self._started) fn();
    }, delay);
  };

  // -- sharing one data channel between tabs --------------------------------
  //
  // The tab holding the Web Lock named after the server and user leads: it
  // owns the session and the data channel and broadcasts every event to the
  // other tabs, which subscribe and publish through it.  When it goes, the
  // next tab in line takes the lock, joins, and every tab resubscribes from
  // where it was.

  Client.prototype._share = function () {
    var self = this;
    var key = 'txcomet ' + this.url + ' ' + (this.options.user || '');
    this.role = 'follower';
    this._bc = new BroadcastChannel(key);
    this._bc.onmessage = function (e) { self._onShared(e.data); };
    navigator.locks.request(key, function () {
      if (!self._started) return undefined;
      return new Promise(function (release) {
        self._releaseLock = release;
        self._becomeLeader();
      });
    });
    this._broadcast({t: 'hello', tab: this._tab});
  };

  Client.prototype._broadcast = function (msg) {
    if (this._bc) this._bc.postMessage(msg);
  };

  Client.prototype._becomeLeader = function () {
    var self = this;
    var waiting = this._pending;
    this._pending = {};
    this.role = 'leader';
    this._failures = 0;
    this._broadcast({t: 'leader', tab: this._tab});
    this._lead();
    // Requests that were waiting on the old leader are made again here.
    Object.keys(waiting).forEach(function (ref) {
      var w = waiting[ref];
      self._op(w.message).then(w.resolve, w.reject);
    });
  };

  /** A follower's request, carried out by the leader. */
  Client.prototype._ask = function (message) {
    var self = this;
    if (this.role !== 'follower') return this._op(message);
    return new Promise(function (resolve, reject) {
      var ref = self._tab + '.' + (++self._refs);
      self._pending[ref] = {resolve: resolve, reject: reject, message: message};
      self._broadcast({t: 'req', tab: self._tab, ref: ref, message: message});
    });
  };

  Client.prototype._onShared = function (msg) {
    var self = this;
    if (this.role === 'leader') {
      if (msg.t === 'hello') {
        this._broadcast({t: 'state', state: this.state, transport: this.transport});
        if (this.session) this._broadcast({t: 'session', session: this.session, client: this.clientId});
      } else if (msg.t === 'req') {
        var m = msg.message;
        if (m.op === 'subscribe') {
          (this._followerSubs[msg.tab] || (this._followerSubs[msg.tab] = {}))[m.channel] = true;
        } else if (m.op === 'unsubscribe') {
          delete (this._followerSubs[msg.tab] || {})[m.channel];
          if (this._stillWanted(m.channel)) {
            this._broadcast({t: 'res', ref: msg.ref, ok: true, reply: {channel: m.channel, subscribed: true}});
            return;
          }
        }
        this._op(m).then(function (reply) {
          self._broadcast({t: 'res', ref: msg.ref, ok: true, reply: reply});
        }, function (error) {
          self._broadcast({t: 'res', ref: msg.ref, ok: false, error: {error: error.code, message: error.message, status: error.status}});
        });
      } else if (msg.t === 'bye') {
        var gone = this._followerSubs[msg.tab] || {};
        delete this._followerSubs[msg.tab];
        Object.keys(gone).forEach(function (pattern) {
          if (!self._stillWanted(pattern) && self.session) {
            self._op({op: 'unsubscribe', channel: pattern}).catch(function () { /* gone */ });
          }
        });
      }
      return;
    }
    // follower
    if (msg.t === 'events') {
      this._dispatch(msg.events);
    } else if (msg.t === 'state') {
      if (msg.transport !== undefined) this._setTransport(msg.transport);
      this._setState(msg.state);
    } else if (msg.t === 'session') {
      this.session = msg.session;
      this.clientId = msg.client;
      this._resubscribe();
    } else if (msg.t === 'leader' || msg.t === 'gone') {
      // A new leader: ask it again for what the old one did not answer.
      var waiting = this._pending;
      this._pending = {};
      Object.keys(waiting).forEach(function (ref) {
        var w = waiting[ref];
        self._ask(w.message).then(w.resolve, w.reject);
      });
    } else if (msg.t === 'res' && this._pending[msg.ref]) {
      var w = this._pending[msg.ref];
      delete this._pending[msg.ref];
      if (msg.ok) w.resolve(msg.reply); else w.reject(errorFrom(msg.error, msg.error && msg.error.status));
    }
  };

  // Tell a (new) session every channel this tab wants, from where it was.
  Client.prototype._resubscribe = function () {
    var self = this;
    Object.keys(this._subs).forEach(function (pattern) {
      self._subscribeMessage(pattern, self._since(pattern)).then(function (message) {
        return self._ask(message);
      }).then(function (ack) { self._acked(pattern, ack); }, function (error) {
        self._emit('error', error);
      });
    });
  };

  var TxComet = {
    Client: Client,
    ORDER: ORDER.slice(),
    STATES: STATES.slice(),
    version: VERSION,
    matches: matches
  };
  global.TxComet = TxComet;
})(typeof globalThis !== 'undefined' ? globalThis : this);
