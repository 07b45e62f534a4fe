/*
 * loadgen: the fan-out load generator of txcomet's benchmark.
 *
 * Holds thousands of subscribers open on one server (SSE, XHR/chunked
 * streaming, WebSocket, Socket.IO over WebSocket, long-polling), publishes
 * through the server's HTTP publish API at a fixed rate, and reports, as one
 * JSON object on stdout: deliveries, losses, duplicates, publish-to-receive
 * latency percentiles, the server's CPU time (from /proc) over the measured
 * window, its resident memory, and the generator's own CPU time.
 *
 * Every published payload carries a marker "~S<seq>T<send-time-us>~" padded
 * to the requested size.  Subscribers find markers with a byte-level scanner,
 * so they need not parse each server's framing beyond what keeps the
 * connection alive (WebSocket frames and pings, HTTP responses for
 * long-polling).  Time is CLOCK_MONOTONIC, shared by all processes.
 *
 * Process layout: the parent publishes and coordinates; --procs children
 * (default 1) each hold a share of the subscribers in one epoll loop.
 *
 * --storm K: a reconnect storm.  Once measured event K is published, every
 * subscriber's connection is reset at once, and each reconnects at a random
 * moment within --storm-spread seconds, resuming after the last event it
 * received: SSE with Last-Event-ID (the "id:" line before that event's data),
 * WebSocket with ?last=ID (the event's JSON "id"; --resume-param renames it),
 * Socket.IO with its connection state recovery (the pid of the first CONNECT
 * answer and the offset each event carries last).  Reported: how many
 * resumed (received an event published after the storm) and how long after
 * the storm; losses and duplicates are counted as always.
 *
 * --tls: subscribers connect over TLS (HTTP/1.1 by ALPN, no certificate
 * checks); publishes stay plain.  Only in a build with OpenSSL:
 *
 * Build: gcc -O2 -o loadgen loadgen.c   (the benchmark does this itself)
 *        gcc -O2 -DLOADGEN_TLS -o loadgen loadgen.c -lssl -lcrypto   (with --tls)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef LOADGEN_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------ */
/* options */

enum { M_SSE, M_STREAM, M_WS, M_SIO, M_LONGPOLL, M_NCHAN_LP, M_BAYEUX_WS, M_BAYEUX_LP };

/* Bayeux clients: the handshake's clientId, then subscribe to o_bayeux_channel
   and keep one /meta/connect outstanding (re-sent when its reply arrives). */
static const char *o_bayeux_channel = "/bench";
#define IS_WS() (o_mode == M_WS || o_mode == M_SIO || o_mode == M_BAYEUX_WS)

static const char *o_host = "127.0.0.1";
static int o_port = 0;
static int o_mode = M_SSE;
static const char *o_path = "/";
static int o_subs = 100;
static const char *o_pub_path = NULL;
static const char *o_pub_type = "text/plain";
static double o_rate = 10.0;
static int o_warmup = 10;
static int o_events = 100;
static int o_size = 100;
static double o_drain = 5.0;
static int o_slow = 0;
static int o_slow_rcvbuf = 4096;
static double o_hold = 0.0;
static int o_procs = 1;
static int o_concurrency = 200;
/* --keepalive K: publish over K persistent connections, one request in
   flight on each, as fast as the server answers (the publish-rate
   workload); 0: a new connection per publish, at --rate. */
static int o_keepalive = 0;
/* --churn: once the measured window opens, a subscriber that receives an
   event closes its connection and opens a new one at once (the
   connection-rate workload); "requests" counts the cycles. */
static int o_churn = 0;
static double o_settle = 0.5;
static double o_connect_timeout = 60.0;
static int o_src_ips = 200;
static const char *o_join_path = NULL;
static const char *o_join_body = NULL;
static char o_pids[1024] = "";
static char o_headers[4096] = "";
static char o_sub_ports[256] = "";
static int o_tls = 0;
static int o_storm = 0;
static double o_storm_spread = 1.0;
static const char *o_resume_param = "last";

/* ------------------------------------------------------------------ */
/* time, cpu, memory */

static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

static double rusage_cpu(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

#define MAXPIDS 64
static int n_pids = 0;
static int pids[MAXPIDS];

/* utime+stime of one process, in seconds; -1 when it is gone */
static double proc_cpu(int pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    unsigned long utime = 0, stime = 0;
    int field = 2;
    for (char *q = p + 1; *q; q++) {
        if (*q == ' ') {
            field++;
            if (field == 14) utime = strtoul(q + 1, NULL, 10);
            if (field == 15) { stime = strtoul(q + 1, NULL, 10); break; }
        }
    }
    return (double)(utime + stime) / sysconf(_SC_CLK_TCK);
}

static double pid_cpu_at[MAXPIDS];

/* total CPU of the server processes; each one's is kept in pid_cpu_at */
static double pids_cpu(void) {
    double total = 0;
    for (int i = 0; i < n_pids; i++) {
        double c = proc_cpu(pids[i]);
        pid_cpu_at[i] = c > 0 ? c : 0;
        if (c > 0) total += c;
    }
    return total;
}

/* CPU seconds the whole machine spent busy (all cores), from /proc/stat */
static double machine_busy(double *steal) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[10] = {0};
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                     &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (got < 8) return 0;
    /* guest time is already counted in user time */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    if (steal) *steal = (double)v[7] / sysconf(_SC_CLK_TCK);
    return (double)busy / sysconf(_SC_CLK_TCK);
}

/* resident memory of the server processes, in KiB */
static long pids_rss(void) {
    long total = 0;
    for (int i = 0; i < n_pids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "VmRSS:", 6)) total += strtol(line + 6, NULL, 10);
        fclose(f);
    }
    return total;
}

/* ------------------------------------------------------------------ */
/* latency histogram: exact below 1024 us, then 128 buckets per octave */

#define HSUB 128
#define HBUCKETS (1024 + 40 * HSUB)

static int hist_index(uint64_t v) {
    if (v < 1024) return (int)v;
    int e = 63 - __builtin_clzll(v);
    if (e > 49) return HBUCKETS - 1;
    int sub = (int)((v >> (e - 7)) & (HSUB - 1));
    return 1024 + (e - 10) * HSUB + sub;
}

static uint64_t hist_value(int i) {
    if (i < 1024) return (uint64_t)i;
    int e = (i - 1024) / HSUB + 10, sub = (i - 1024) % HSUB;
    return ((uint64_t)(HSUB + sub)) << (e - 7);
}

static uint64_t hist_pct(const uint64_t *h, uint64_t total, double pct) {
    if (!total) return 0;
    uint64_t want = (uint64_t)(pct / 100.0 * total);
    if (want >= total) want = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        seen += h[i];
        if (seen > want) return hist_value(i);
    }
    return hist_value(HBUCKETS - 1);
}

/* ------------------------------------------------------------------ */
/* what a child reports to the parent */

struct result {
    uint64_t connected, failed, live, deliveries, duplicates, out_of_order, lost;
    uint64_t disconnects, warm_subs, complete_subs, bytes_read, requests, http_errors;
    uint64_t slow_closed, cpu_window_us, slow_bytes;
    uint64_t storm_dropped, storm_reconnected, storm_resumed, storm_retries;
    /* not summed: */
    uint64_t first_delivery_us, last_delivery_us, max_latency_us;
    uint64_t storm_reconnect_max_us, storm_resume_max_us;
    uint64_t hist[HBUCKETS];
    uint64_t storm_hist[HBUCKETS]; /* time from the storm to each resume */
};

/* ------------------------------------------------------------------ */
/* subscriber connections */

enum {
    S_IDLE, S_CONNECTING, S_TLS, S_HEADERS, S_STREAM, S_WS_OPEN, S_WS, S_LP_JOIN, S_LP_WAIT, S_DEAD
};

typedef struct conn {
    int fd;
#ifdef LOADGEN_TLS
    SSL *ssl;
#endif
    int idx;
    uint8_t state;
    uint8_t slow;
    uint8_t subscribed;  /* handshake done (counted once) */
    uint8_t handshaking; /* counted in the in-flight connect budget */
    uint8_t complete;
    uint8_t sc_state;    /* marker scanner */
    uint64_t sc_seq, sc_t;
    uint64_t started_us;
    /* HTTP response (headers, and whole bodies for long-polling) */
    char *buf;
    int blen, bcap;
    /* WebSocket frame parser */
    uint8_t wsh[14];
    int wsh_len;
    uint64_t ws_left;
    uint8_t ws_op;
    uint16_t ws_ctrl_len;
    char ws_ctrl[512];
    /* Bayeux: how much of "/meta/connect" the current frame has matched,
       and whether a connect reply was in it; subscribed yet */
    uint8_t bx_match, bx_connect, bx_subscribed;
    /* --churn: got a measured event, reconnect once this read is done */
    uint8_t churn;
    /* stats */
    uint32_t got;
    uint64_t max_seq;
    uint8_t *seen;
    /* --storm: 1 dropped and waiting to reconnect (at storm_at), 2
       reconnecting, 3 resumed; the id being read and the one ready */
    uint8_t storm;
    uint8_t storm_counted; /* bits: 1 its reconnection counted, 2 its resume */
    uint8_t storm_tries;   /* failed reconnections so far (for the backoff) */
    uint64_t storm_at;
    uint8_t id_state, id_ready;
    uint8_t id_vlen;
    char id_val[96];
    /* long-polling (and a resuming subscriber's last id, Socket.IO pid) */
    char session[72];
    char last[96];
    char lastmod[64];
    char etag[64];
} conn;

static int ep;
static conn *conns;
static int my_first, my_n;
static struct result R;
static int in_flight = 0, next_connect = 0, handshakes_done = 0;
static int live_subs = 0; /* subscribed and not slow */
static int draining = 0;
static uint64_t drain_deadline = 0;
static struct sockaddr_in server_addr;
/* --sub-ports: subscribers spread over these (several nodes of one
   cluster); publishes still go to --port */
static struct sockaddr_in sub_addrs[16];
static int n_sub_addrs = 0;
static char rbuf[1 << 16];
/* --storm: when this child reset its subscribers, the last event published
   before that, how many still wait to reconnect */
static uint64_t storm_t0 = 0, storm_seq = 0, storm_next_scan = 0;
static int storm_waiting = 0;
/* --storm: where an event's id starts and what ends it (see main) */
static const char *id_prefix = NULL;
static int id_plen = 0;
static char id_term = '\n';

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void buf_append(conn *c, const char *p, int n) {
    if (c->blen + n + 1 > c->bcap) {
        int cap = c->bcap ? c->bcap : 1024;
        while (cap < c->blen + n + 1) cap *= 2;
        c->buf = realloc(c->buf, cap);
        if (!c->buf) die("realloc");
        c->bcap = cap;
    }
    memcpy(c->buf + c->blen, p, n);
    c->blen += n;
    c->buf[c->blen] = 0;
}

static void buf_consume(conn *c, int n) {
    memmove(c->buf, c->buf + n, c->blen - n);
    c->blen -= n;
    c->buf[c->blen] = 0;
}

static void buf_free(conn *c) {
    free(c->buf);
    c->buf = NULL;
    c->blen = c->bcap = 0;
}

#ifdef LOADGEN_TLS
static SSL_CTX *tls_ctx = NULL;
#endif

static int write_all(int fd, const char *p, int n) {
    int off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { usleep(100); continue; }
            return -1;
        }
        off += (int)w;
    }
    return 0;
}

static void handshake_finished(conn *c, int ok) {
    if (!c->handshaking) return;
    c->handshaking = 0;
    in_flight--;
    handshakes_done++;
    if (ok && c->subscribed) {
        /* a --churn or --storm reconnection: counted once, the first time */
        /* >= 2: Socket.IO sends the events it kept before its CONNECT answer */
        if (c->storm >= 2 && !(c->storm_counted & 1)) {
            uint64_t took = mono_us() - storm_t0;
            c->storm_counted |= 1;
            R.storm_reconnected++;
            if (took > R.storm_reconnect_max_us) R.storm_reconnect_max_us = took;
        }
        return;
    }
    if (ok) {
        c->subscribed = 1;
        R.connected++;
        if (!c->slow) live_subs++;
        if (c->slow) {
            /* stop reading: the server's buffers for it fill up */
            struct epoll_event ev = {.events = 0, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
    } else {
        R.failed++;
    }
}

static void close_conn(conn *c, int rst) {
#ifdef LOADGEN_TLS
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
#endif
    if (c->fd >= 0) {
        if (rst) {
            struct linger l = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    buf_free(c);
}

static void conn_lost(conn *c) {
    if (c->state == S_DEAD) return;
    if (storm_t0 && c->storm) {
        /* after the storm, a lost connection (refused, reset, closed, or
           answered 503/429) is tried again, as Socket.IO's client and
           txcomet's do (EventSource after a network error): after 1, 2, 4,
           then 5 s, each times a random 0.5-1.5 (Socket.IO's defaults), so
           the retries do not come back as one herd */
        static unsigned int seed = 12345;
        int step = c->storm_tries < 3 ? 1 << c->storm_tries : 5;
        if (c->storm_tries < 255) c->storm_tries++;
        if (c->handshaking) {
            c->handshaking = 0;
            in_flight--;
            handshakes_done++;
        }
        close_conn(c, 1);
        c->state = S_IDLE;
        c->storm = 1;
        c->storm_at = mono_us() + (uint64_t)(step * 1e6 * (0.5 + rand_r(&seed) / ((double)RAND_MAX + 1)));
        storm_waiting++;
        R.storm_retries++;
        return;
    }
    if (c->handshaking) {
        handshake_finished(c, 0);
    } else {
        R.disconnects++;
        if (c->subscribed && !c->slow && !c->complete) live_subs--;
    }
    c->state = S_DEAD;
    close_conn(c, 1);
}

/* one marker found */
static void on_marker(conn *c, uint64_t seq, uint64_t t, uint64_t now) {
    if (seq == 0) return;
    if (c->id_ready) {
        /* the id read before this event's data is the one to resume after */
        memcpy(c->last, c->id_val, sizeof c->last);
        c->id_ready = 0;
    }
    if (c->storm == 2 && seq > storm_seq) {
        uint64_t took = now - storm_t0;
        c->storm = 3;
        if (!(c->storm_counted & 2)) { /* not if it resumed before a retry */
            c->storm_counted |= 2;
            R.storm_resumed++;
            R.storm_hist[hist_index(took)]++;
            if (took > R.storm_resume_max_us) R.storm_resume_max_us = took;
        }
    }
    if (seq <= (uint64_t)o_warmup) {
        if (c->max_seq == 0) R.warm_subs++;
        if (seq > c->max_seq) c->max_seq = seq;
        return;
    }
    uint64_t i = seq - o_warmup - 1;
    if (i >= (uint64_t)o_events) return;
    if (seq < c->max_seq) R.out_of_order++;
    if (seq > c->max_seq) c->max_seq = seq;
    if (c->seen[i >> 3] & (1 << (i & 7))) {
        R.duplicates++;
        return;
    }
    c->seen[i >> 3] |= 1 << (i & 7);
    c->got++;
    R.deliveries++;
    if (o_churn) c->churn = 1;
    uint64_t lat = now > t ? now - t : 0;
    R.hist[hist_index(lat)]++;
    if (lat > R.max_latency_us) R.max_latency_us = lat;
    if (!R.first_delivery_us) R.first_delivery_us = now;
    R.last_delivery_us = now;
    if (c->got == (uint32_t)o_events && !c->complete) {
        c->complete = 1;
        R.complete_subs++;
        if (!c->slow) live_subs--;
    }
}

static void scan(conn *c, const uint8_t *p, size_t n, uint64_t now) {
    uint8_t st = c->sc_state;
    uint64_t seq = c->sc_seq, t = c->sc_t;
    for (size_t k = 0; k < n; k++) {
        uint8_t b = p[k];
        if (id_plen) {
            /* --storm: an event id (SSE "\nid: ...", WebSocket "\"id\":\"...") */
            if (c->id_state < id_plen) {
                c->id_state = b == (uint8_t)id_prefix[c->id_state] ? c->id_state + 1 : b == (uint8_t)id_prefix[0];
                if (c->id_state == id_plen) c->id_vlen = 0;
            } else if (b == (uint8_t)id_term || b == '\r') {
                c->id_val[c->id_vlen] = 0;
                c->id_state = 0;
                c->id_ready = 1;
            } else if (c->id_vlen < sizeof c->id_val - 1) {
                c->id_val[c->id_vlen++] = (char)b;
            }
        }
        switch (st) {
        case 0:
            if (b == '~') st = 1;
            break;
        case 1:
            if (b == 'S') { st = 2; seq = 0; }
            else if (b != '~') st = 0;
            break;
        case 2:
            if (b >= '0' && b <= '9') seq = seq * 10 + (b - '0');
            else if (b == 'T') { st = 3; t = 0; }
            else st = (b == '~');
            break;
        case 3:
            if (b >= '0' && b <= '9') t = t * 10 + (b - '0');
            else if (b == '~') { on_marker(c, seq, t, now); st = 0; }
            else st = 0;
            break;
        }
    }
    c->sc_state = st;
    c->sc_seq = seq;
    c->sc_t = t;
}

/* ---- requests ---- */

static int bayeux_messages(conn *c, char *out, int outlen);

static int src_counter = 0;

static int open_socket(int rcvbuf, const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (o_src_ips > 0) {
        /* spread connections over 127.0.0.2.. so thousands of them (and
           their TIME_WAITs across runs) never exhaust one address's ports */
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002 + (src_counter++ % o_src_ips));
        bind(fd, (struct sockaddr *)&src, sizeof src);
    }
    if (connect(fd, (struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_str(conn *c, const char *req, int n) {
#ifdef LOADGEN_TLS
    if (c->ssl) {
        /* small requests and frames: wait out a full socket, as write_all does */
        int off = 0;
        while (off < n) {
            int w = SSL_write(c->ssl, req + off, n - off);
            if (w > 0) { off += w; continue; }
            int e = SSL_get_error(c->ssl, w);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) { usleep(100); continue; }
            conn_lost(c);
            return;
        }
        return;
    }
#endif
    if (write_all(c->fd, req, n) < 0) conn_lost(c);
}

/* read from a subscriber's connection: as read(2), TLS or not */
static ssize_t conn_read(conn *c, char *buf, size_t len) {
#ifdef LOADGEN_TLS
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)len);
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { errno = EAGAIN; return -1; }
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        errno = ECONNRESET;
        return -1;
    }
#endif
    return read(c->fd, buf, len);
}

static void send_subscribe_request(conn *c) {
    char req[8192];
    int n;
    switch (o_mode) {
    case M_WS:
    case M_SIO:
    case M_BAYEUX_WS:
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     o_path, o_host, o_port, o_headers);
        if (o_storm && o_mode == M_WS && c->last[0]) {
            /* resume after the last event: ?PARAM=ID on the path */
            char path[1024];
            snprintf(path, sizeof path, "%s%s%s=%s", o_path, strchr(o_path, '?') ? "&" : "?", o_resume_param, c->last);
            n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n%s\r\n",
                         path, o_host, o_port, o_headers);
        }
        c->state = S_HEADERS;
        break;
    case M_LONGPOLL:
        if (o_join_path && !c->session[0]) {
            int bl = (int)strlen(o_join_body);
            n = snprintf(req, sizeof req,
                         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n%s\r\n%s",
                         o_join_path, o_host, o_port, bl, o_headers, o_join_body);
            c->state = S_LP_JOIN;
            break;
        }
        {
            char path[1024];
            const char *s = strstr(o_path, "{session}");
            if (s) {
                snprintf(path, sizeof path, "%.*s%s%s", (int)(s - o_path), o_path, c->session,
                         s + 9);
            } else {
                snprintf(path, sizeof path, "%s", o_path);
            }
            if (c->last[0]) {
                size_t l = strlen(path);
                snprintf(path + l, sizeof path - l, "%slast=%s", strchr(path, '?') ? "&" : "?",
                         c->last);
            }
            n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", path,
                         o_host, o_port, o_headers);
        }
        c->state = S_LP_WAIT;
        R.requests++;
        send_str(c, req, n);
        /* a held poll is the subscription */
        if (c->handshaking && c->state != S_DEAD) handshake_finished(c, 1);
        return;
    case M_BAYEUX_LP: {
        char body[1024];
        int bl = bayeux_messages(c, body, sizeof body);
        n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n%s\r\n%s",
                     o_path, o_host, o_port, bl, o_headers, body);
        if (!c->session[0]) {
            c->state = S_LP_JOIN;
            send_str(c, req, n);
            return;
        }
        c->state = S_LP_WAIT;
        R.requests++;
        send_str(c, req, n);
        if (c->handshaking && c->state != S_DEAD) handshake_finished(c, 1);
        return;
    }
    case M_NCHAN_LP: {
        char cond[256] = "";
        if (c->lastmod[0])
            snprintf(cond, sizeof cond, "If-Modified-Since: %s\r\nIf-None-Match: %s\r\n",
                     c->lastmod, c->etag);
        n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s%s\r\n", o_path,
                     o_host, o_port, cond, o_headers);
        c->state = S_LP_WAIT;
        R.requests++;
        send_str(c, req, n);
        if (c->handshaking && c->state != S_DEAD) handshake_finished(c, 1);
        return;
    }
    case M_SSE: {
        char resume[160] = "";
        if (o_storm && c->last[0]) snprintf(resume, sizeof resume, "Last-Event-ID: %s\r\n", c->last);
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n%s%s\r\n",
                     o_path, o_host, o_port, resume, o_headers);
        c->state = S_HEADERS;
        break;
    }
    default:
        n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", o_path,
                     o_host, o_port, o_headers);
        c->state = S_HEADERS;
        break;
    }
    send_str(c, req, n);
}

static void start_connect(conn *c) {
    c->fd = open_socket(c->slow ? o_slow_rcvbuf : 0,
                        n_sub_addrs ? &sub_addrs[c->idx % n_sub_addrs] : &server_addr);
    c->started_us = mono_us();
    c->handshaking = 1;
    in_flight++;
    if (c->fd < 0) {
        c->state = S_DEAD;
        handshake_finished(c, 0);
        return;
    }
    c->state = S_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

/* ---- HTTP response parsing ---- */

/* header value (trimmed) into out; 1 if found */
static int header_value(const char *hdrs, const char *name, char *out, int outlen) {
    size_t nl = strlen(name);
    const char *p = hdrs;
    while ((p = strchr(p, '\n'))) {
        p++;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            const char *e = v;
            while (*e && *e != '\r' && *e != '\n') e++;
            int l = (int)(e - v);
            if (l >= outlen) l = outlen - 1;
            memcpy(out, v, l);
            out[l] = 0;
            return 1;
        }
    }
    return 0;
}

/*
 * A complete HTTP response at the start of c->buf?  Returns its total
 * length (headers + body) and sets *status, *body, *bodylen (the body is
 * de-chunked in place); 0 when more bytes are needed; -1 on garbage.
 */
static int parse_response(conn *c, int *status, char **body, int *bodylen) {
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return c->blen > 65536 ? -1 : 0;
    int hlen = (int)(end - c->buf) + 4;
    if (strncmp(c->buf, "HTTP/1.", 7)) return -1;
    *status = atoi(c->buf + 9);
    char v[64];
    char save = c->buf[hlen - 2];
    c->buf[hlen - 2] = 0;
    int chunked = header_value(c->buf, "Transfer-Encoding", v, sizeof v) && strcasestr(v, "chunked");
    long clen = -1;
    if (header_value(c->buf, "Content-Length", v, sizeof v)) clen = atol(v);
    if (o_mode == M_NCHAN_LP && *status == 200) {
        header_value(c->buf, "Last-Modified", c->lastmod, sizeof c->lastmod);
        header_value(c->buf, "Etag", c->etag, sizeof c->etag);
    }
    c->buf[hlen - 2] = save;
    if (*status == 304 || *status == 204 || (*status >= 100 && *status < 200)) clen = 0;
    if (!chunked) {
        if (clen < 0) return -1; /* read-until-close bodies are not used here */
        if (c->blen < hlen + clen) return 0;
        *body = c->buf + hlen;
        *bodylen = (int)clen;
        return hlen + (int)clen;
    }
    /* de-chunk into place */
    char *in = c->buf + hlen, *out = c->buf + hlen, *lim = c->buf + c->blen;
    for (;;) {
        char *eol = memmem(in, lim - in, "\r\n", 2);
        if (!eol) return 0;
        long size = strtol(in, NULL, 16);
        char *data = eol + 2;
        if (size == 0) {
            /* trailers: up to an empty line */
            char *t = data;
            for (;;) {
                char *e = memmem(t, lim - t, "\r\n", 2);
                if (!e) return 0;
                if (e == t) {
                    *body = c->buf + hlen;
                    *bodylen = (int)(out - (c->buf + hlen));
                    return (int)(e + 2 - c->buf);
                }
                t = e + 2;
            }
        }
        if (lim - data < size + 2) return 0;
        memmove(out, data, size);
        out += size;
        in = data + size + 2;
    }
}

/* the string value of the last "key":"value" in a JSON text */
static int last_json_string(const char *body, int len, const char *key, char *out, int outlen) {
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    size_t pl = strlen(pat);
    const char *found = NULL, *p = body, *lim = body + len;
    while (p < lim && (p = memmem(p, lim - p, pat, pl))) {
        found = p;
        p += pl;
    }
    if (!found) return 0;
    const char *v = found + pl, *e = memchr(v, '"', lim - v);
    if (!e || e - v >= outlen) return 0;
    memcpy(out, v, e - v);
    out[e - v] = 0;
    return 1;
}

/* ---- WebSocket ---- */

static void ws_send_text(conn *c, const char *text, int len, int opcode) {
    uint8_t frame[1024];
    int h = 2;
    if (len > (int)sizeof frame - 8) return;
    frame[0] = 0x80 | opcode;
    if (len <= 125) {
        frame[1] = 0x80 | len;
    } else {
        frame[1] = 0x80 | 126;
        frame[2] = (uint8_t)(len >> 8);
        frame[3] = (uint8_t)len;
        h = 4;
    }
    memset(frame + h, 0, 4); /* a zero mask: the payload goes as it is */
    memcpy(frame + h + 4, text, len);
    send_str(c, (char *)frame, h + 4 + len);
}

/* ---- Bayeux ---- */

static const char BX_CONNECT[] = "/meta/connect";

/* a batch of Bayeux messages for this client: subscribe (first time) and connect */
static int bayeux_messages(conn *c, char *out, int outlen) {
    const char *type = o_mode == M_BAYEUX_WS ? "websocket" : "long-polling";
    int n = 0;
    if (!c->session[0]) {
        return snprintf(out, outlen,
                        "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
                        "\"supportedConnectionTypes\":[\"%s\"]}]", type);
    }
    n += snprintf(out + n, outlen - n, "[");
    if (!c->bx_subscribed) {
        /* over WebSocket the subscribe goes alone: a server may answer a
           batch only once all of it is done, and the connect is held */
        int alone = o_mode == M_BAYEUX_WS;
        n += snprintf(out + n, outlen - n,
                      "{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"%s\"}%s",
                      c->session, o_bayeux_channel, alone ? "]" : ",");
        c->bx_subscribed = 1;
        if (alone) return n;
    }
    n += snprintf(out + n, outlen - n,
                  "{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"connectionType\":\"%s\"}]",
                  c->session, type);
    return n;
}

/* look for "/meta/connect" across a frame's or a body's pieces */
static void bayeux_scan(conn *c, const uint8_t *p, size_t n) {
    uint8_t m = c->bx_match;
    for (size_t k = 0; k < n; k++) {
        if (p[k] == (uint8_t)BX_CONNECT[m]) {
            if (++m == sizeof BX_CONNECT - 1) {
                c->bx_connect = 1;
                m = 0;
            }
        } else {
            m = p[k] == '/';
        }
    }
    c->bx_match = m;
}

static void ws_control(conn *c, uint64_t now) {
    (void)now;
    if (c->ws_op == 0x9) {
        ws_send_text(c, c->ws_ctrl, c->ws_ctrl_len, 0xA); /* pong */
    } else if (c->ws_op == 0x8) {
        conn_lost(c);
    } else if (o_mode == M_BAYEUX_WS && c->ws_op == 0x1) {
        char msg[1024];
        int n;
        c->ws_ctrl[c->ws_ctrl_len < sizeof c->ws_ctrl ? c->ws_ctrl_len : sizeof c->ws_ctrl - 1] = 0;
        if (!c->session[0]) {
            if (!strstr(c->ws_ctrl, "/meta/handshake") ||
                !last_json_string(c->ws_ctrl, c->ws_ctrl_len, "clientId", c->session, sizeof c->session)) {
                R.http_errors++;
                if (R.http_errors <= 3) fprintf(stderr, "loadgen: handshake got %.*s\n", c->ws_ctrl_len, c->ws_ctrl);
                c->state = S_DEAD;
                handshake_finished(c, 0);
                close_conn(c, 1);
                return;
            }
            n = bayeux_messages(c, msg, sizeof msg);
            ws_send_text(c, msg, n, 0x1);
        } else if (c->state == S_WS_OPEN && strstr(c->ws_ctrl, "/meta/subscribe")) {
            if (!strstr(c->ws_ctrl, "\"successful\":true")) {
                R.http_errors++;
                if (R.http_errors <= 3) fprintf(stderr, "loadgen: subscribe got %.*s\n", c->ws_ctrl_len, c->ws_ctrl);
                c->state = S_DEAD;
                handshake_finished(c, 0);
                close_conn(c, 1);
                return;
            }
            c->state = S_WS;
            handshake_finished(c, 1);
            c->bx_connect = 1; /* now the first connect */
        }
        if (c->bx_connect && c->session[0] && c->state != S_DEAD) {
            c->bx_connect = 0;
            n = bayeux_messages(c, msg, sizeof msg);
            ws_send_text(c, msg, n, 0x1);
        }
    } else if (o_mode == M_SIO && c->ws_op == 0x1) {
        /* Engine.IO / Socket.IO packets that fit in the control buffer */
        if (c->ws_ctrl_len >= 1 && c->ws_ctrl[0] == '0') {
            if (o_storm && c->session[0] && c->last[0]) {
                /* connection state recovery: the session and the last offset */
                char msg[256];
                int n = snprintf(msg, sizeof msg, "40{\"pid\":\"%s\",\"offset\":\"%s\"}", c->session, c->last);
                ws_send_text(c, msg, n, 0x1);
            } else {
                ws_send_text(c, "40", 2, 0x1); /* connect to the default namespace */
            }
        } else if (o_storm && c->ws_ctrl_len >= 3 && c->ws_ctrl[0] == '4' && c->ws_ctrl[1] == '2' &&
                   c->ws_ctrl_len < sizeof c->ws_ctrl && c->ws_ctrl[c->ws_ctrl_len - 1] == ']') {
            /* an event: its last element is its offset (42[...,"OFFSET"]) */
            int e = c->ws_ctrl_len - 2, b = e - 1;
            while (b > 2 && c->ws_ctrl[b] != '"') b--;
            if (c->ws_ctrl[e] == '"' && b > 2 && e - b - 1 < (int)sizeof c->last) {
                memcpy(c->last, c->ws_ctrl + b + 1, e - b - 1);
                c->last[e - b - 1] = 0;
            }
        } else if (c->ws_ctrl_len == 1 && c->ws_ctrl[0] == '2') {
            ws_send_text(c, "3", 1, 0x1); /* pong */
        } else if (c->ws_ctrl_len >= 2 && c->ws_ctrl[0] == '4' && c->ws_ctrl[1] == '0') {
            if (o_storm && !c->session[0])
                last_json_string(c->ws_ctrl, c->ws_ctrl_len, "pid", c->session, sizeof c->session);
            if (c->state == S_WS_OPEN) {
                c->state = S_WS;
                handshake_finished(c, 1);
            }
        }
    }
}

static void ws_feed(conn *c, const uint8_t *p, size_t n, uint64_t now) {
    while (n > 0 && c->state != S_DEAD) {
        if (c->ws_left == 0 && c->wsh_len >= 0) {
            /* reading a frame header */
            c->wsh[c->wsh_len++] = *p++;
            n--;
            int need = 2;
            if (c->wsh_len >= 2) {
                int l7 = c->wsh[1] & 0x7f;
                need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->wsh[1] & 0x80) ? 4 : 0);
            }
            if (c->wsh_len < need) continue;
            int l7 = c->wsh[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126) len = ((uint64_t)c->wsh[2] << 8) | c->wsh[3];
            if (l7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = (len << 8) | c->wsh[2 + i];
            }
            c->ws_op = c->wsh[0] & 0x0f;
            c->wsh_len = 0;
            c->ws_ctrl_len = 0;
            c->ws_left = len;
            if (len == 0) {
                ws_control(c, now);
                continue;
            }
            /* mark "in payload" with wsh_len = -1 */
            c->wsh_len = -1;
            continue;
        }
        size_t take = n < c->ws_left ? n : (size_t)c->ws_left;
        int small = c->ws_op >= 0x8 || ((o_mode == M_SIO || o_mode == M_BAYEUX_WS) && c->ws_op == 0x1);
        if (small) {
            size_t room = sizeof c->ws_ctrl - c->ws_ctrl_len;
            size_t k = take < room ? take : room;
            memcpy(c->ws_ctrl + c->ws_ctrl_len, p, k);
            c->ws_ctrl_len += (uint16_t)k;
        }
        if (c->ws_op < 0x8) {
            scan(c, p, take, now);
            if (o_mode == M_BAYEUX_WS) bayeux_scan(c, p, take);
        }
        p += take;
        n -= take;
        c->ws_left -= take;
        if (c->ws_left == 0) {
            c->wsh_len = 0;
            if (small) ws_control(c, now);
        }
    }
}

/* ---- reading ---- */

static void after_headers(conn *c, uint64_t now) {
    char *end = strstr(c->buf, "\r\n\r\n");
    int hlen = (int)(end - c->buf) + 4;
    int status = atoi(c->buf + 9);
    int ws = IS_WS();
    if ((ws && status != 101) || (!ws && status != 200)) {
        R.http_errors++;
        if (R.http_errors <= 3) {
            fprintf(stderr, "loadgen: subscriber got: %.*s\n", hlen > 300 ? 300 : hlen, c->buf);
        }
        if (storm_t0 && c->storm && (status == 503 || status == 429)) {
            /* "try again shortly" (a server at its connection cap while
               the storm's dropped connections are still being closed):
               a client does, a second later */
            conn_lost(c);
            return;
        }
        c->state = S_DEAD;
        handshake_finished(c, 0);
        close_conn(c, 1);
        return;
    }
    int rest = c->blen - hlen;
    char tmp[65536];
    memcpy(tmp, c->buf + hlen, rest);
    buf_free(c);
    if (ws) {
        c->state = S_WS_OPEN;
        c->wsh_len = 0;
        c->ws_left = 0;
        if (o_mode == M_WS) {
            c->state = S_WS;
            handshake_finished(c, 1);
        }
        if (o_mode == M_BAYEUX_WS) {
            char msg[256];
            int n = bayeux_messages(c, msg, sizeof msg);
            ws_send_text(c, msg, n, 0x1);
        }
        if (rest) ws_feed(c, (uint8_t *)tmp, rest, now);
    } else {
        c->state = S_STREAM;
        handshake_finished(c, 1);
        if (rest) scan(c, (uint8_t *)tmp, rest, now);
    }
}

static void lp_responses(conn *c, uint64_t now) {
    for (;;) {
        int status = 0, bodylen = 0;
        char *body = NULL;
        int total = parse_response(c, &status, &body, &bodylen);
        if (total == 0) return;
        if (total < 0) {
            R.http_errors++;
            conn_lost(c);
            return;
        }
        if (c->state == S_LP_JOIN) {
            if (status != 200 || !last_json_string(body, bodylen,
                                                   o_mode == M_BAYEUX_LP ? "clientId" : "session",
                                                   c->session, sizeof c->session)) {
                R.http_errors++;
                if (R.http_errors <= 3) fprintf(stderr, "loadgen: join got %d %.*s\n", status, bodylen, body);
                c->state = S_DEAD;
                handshake_finished(c, 0);
                close_conn(c, 1);
                return;
            }
            buf_consume(c, total);
            handshake_finished(c, 1);
            if (c->slow) return; /* a slow long-poller never polls */
            send_subscribe_request(c);
            continue;
        }
        if (o_mode == M_BAYEUX_LP && status == 200 && memmem(body, bodylen, "\"successful\":false", 19)) {
            R.http_errors++;
            if (R.http_errors <= 3) fprintf(stderr, "loadgen: bayeux got %.*s\n", bodylen > 300 ? 300 : bodylen, body);
        }
        if (status == 200) {
            scan(c, (uint8_t *)body, bodylen, now);
            if (o_mode == M_LONGPOLL) {
                char id[96];
                if (last_json_string(body, bodylen, "id", id, sizeof id)) strcpy(c->last, id);
            }
        } else if (!(o_mode == M_NCHAN_LP && (status == 304 || status == 408))) {
            R.http_errors++;
            if (R.http_errors <= 3) fprintf(stderr, "loadgen: poll got %d %.*s\n", status, bodylen, body);
        }
        buf_consume(c, total);
        send_subscribe_request(c);
        if (c->state == S_DEAD) return;
    }
}

static void on_readable(conn *c, uint64_t now) {
    for (int round = 0; round < 4; round++) {
        ssize_t n = conn_read(c, rbuf, sizeof rbuf);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            conn_lost(c);
            return;
        }
        if (n == 0) {
            conn_lost(c);
            return;
        }
        R.bytes_read += n;
        switch (c->state) {
        case S_HEADERS:
            buf_append(c, rbuf, (int)n);
            if (strstr(c->buf, "\r\n\r\n")) after_headers(c, now);
            else if (c->blen > 65536) conn_lost(c);
            break;
        case S_STREAM:
            scan(c, (uint8_t *)rbuf, n, now);
            break;
        case S_WS_OPEN:
        case S_WS:
            ws_feed(c, (uint8_t *)rbuf, n, now);
            break;
        case S_LP_JOIN:
        case S_LP_WAIT:
            buf_append(c, rbuf, (int)n);
            lp_responses(c, now);
            break;
        default:
            return;
        }
        if (c->state == S_DEAD) return;
#ifdef LOADGEN_TLS
        /* a TLS read gives one record at a time: go on while the socket
           or OpenSSL holds more */
        if (c->ssl) continue;
#endif
        if (n < (ssize_t)sizeof rbuf) return;
    }
}

#ifdef LOADGEN_TLS
/* --tls: drive the handshake; once done, send the subscribe request */
static void tls_step(conn *c) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        send_subscribe_request(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        struct epoll_event ev = {.events = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    R.http_errors++;
    if (R.http_errors <= 3) fprintf(stderr, "loadgen: TLS handshake failed: %s\n",
                                    ERR_error_string(ERR_get_error(), NULL));
    conn_lost(c);
}
#endif

static void on_event(conn *c, uint32_t events, uint64_t now) {
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            conn_lost(c);
            return;
        }
        if (events & EPOLLOUT) {
#ifdef LOADGEN_TLS
            if (o_tls) {
                c->ssl = SSL_new(tls_ctx);
                SSL_set_fd(c->ssl, c->fd);
                SSL_set_connect_state(c->ssl);
                c->state = S_TLS;
                tls_step(c);
                return;
            }
#endif
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            send_subscribe_request(c);
        }
        return;
    }
#ifdef LOADGEN_TLS
    if (c->state == S_TLS) {
        tls_step(c);
        return;
    }
#endif
    if (events & EPOLLIN) on_readable(c, now);
    else if (events & (EPOLLERR | EPOLLHUP)) conn_lost(c);
}

/* a new connection for this subscriber: its counts, marks, where it is
   in the stream (last id, Socket.IO pid) and storm state stay */
static void reopen(conn *c) {
    conn keep = *c;
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->idx = keep.idx;
    c->slow = keep.slow;
    c->subscribed = keep.subscribed;
    c->complete = keep.complete;
    c->got = keep.got;
    c->max_seq = keep.max_seq;
    c->seen = keep.seen;
    c->storm = keep.storm;
    c->storm_counted = keep.storm_counted;
    c->storm_tries = keep.storm_tries;
    c->storm_at = keep.storm_at;
    memcpy(c->last, keep.last, sizeof c->last);
    memcpy(c->session, keep.session, sizeof c->session);
    start_connect(c);
}

/* --churn: this connection had its event; close it and open the next
   (its counts and marks stay with the subscriber) */
static void churn_reconnect(conn *c) {
    R.requests++;
    close_conn(c, 0);
    if (draining) {
        c->state = S_DEAD;
        if (!c->complete) live_subs--;
        c->complete = 1;
        return;
    }
    reopen(c);
}

/* --storm: reset every live subscriber's connection at once; each
   reconnects at a random moment within --storm-spread seconds */
static void storm_begin(uint64_t seq) {
    storm_t0 = mono_us();
    storm_seq = seq;
    unsigned int seed = (unsigned int)(my_first * 2654435761u + 1);
    for (int i = 0; i < my_n; i++) {
        conn *c = &conns[i];
        if (!c->subscribed || c->slow || c->state == S_DEAD || c->handshaking) continue;
        close_conn(c, 1);
        c->state = S_IDLE;
        c->storm = 1;
        c->storm_at = storm_t0 + (uint64_t)(o_storm_spread * 1e6 * (rand_r(&seed) / ((double)RAND_MAX + 1)));
        storm_waiting++;
        R.storm_dropped++;
    }
}

/* reconnect those whose time has come; give up on a reconnection that
   has not been answered in 10 s (a connection the server's kernel dropped
   from a full accept queue looks open to the client), and try again */
static void storm_reconnect_due(uint64_t now) {
    for (int i = 0; i < my_n; i++) {
        conn *c = &conns[i];
        if (c->storm == 1 && now >= c->storm_at) {
            c->storm = 2;
            storm_waiting--;
            reopen(c);
        } else if (c->storm == 2 && c->handshaking && now - c->started_us > 10000000) {
            conn_lost(c);
        }
    }
}

/* ------------------------------------------------------------------ */
/* the child: subscribers */

static void child_main(int idx, int first, int n, int to_parent, int from_parent) {
    double window_cpu0 = -1;
    my_first = first;
    my_n = n;
    ep = epoll_create1(0);
    conns = calloc(n, sizeof(conn));
    int bitmap = (o_events + 7) / 8;
    uint8_t *bits = calloc((size_t)n, bitmap);
    if (!conns || !bits) die("calloc");
    for (int i = 0; i < n; i++) {
        conns[i].fd = -1;
        conns[i].idx = first + i;
        conns[i].seen = bits + (size_t)i * bitmap;
        /* the slow consumers are the last subscribers overall */
        conns[i].slow = (first + i) >= o_subs - o_slow;
    }
    set_nonblock(from_parent);
    struct epoll_event pev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, from_parent, &pev);
    int reported = 0;
    struct epoll_event evs[1024];
    char line[256];
    int linelen = 0;
    uint64_t connect_deadline = mono_us() + (uint64_t)(o_connect_timeout * 1e6);
    for (;;) {
        while (in_flight < o_concurrency && next_connect < n) start_connect(&conns[next_connect++]);
        uint64_t now = mono_us();
        if (!reported && handshakes_done < n && now > connect_deadline) {
            for (int i = 0; i < n; i++)
                if (conns[i].handshaking) conn_lost(&conns[i]);
        }
        if (!reported && handshakes_done == n) {
            dprintf(to_parent, "C %d %llu %llu\n", idx, (unsigned long long)R.connected,
                    (unsigned long long)R.failed);
            reported = 1;
        }
        if (draining && (live_subs <= 0 || now > drain_deadline)) break;
        if (storm_t0 && (storm_waiting || now >= storm_next_scan)) {
            storm_reconnect_due(now);
            storm_next_scan = now + 100000;
        }
        int timeout = storm_waiting ? 1 : 50;
        int k = epoll_wait(ep, evs, 1024, timeout);
        now = mono_us();
        for (int i = 0; i < k; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                ssize_t r = read(from_parent, line + linelen, sizeof line - 1 - linelen);
                if (r <= 0) {
                    if (r == 0) goto quit;
                    continue;
                }
                linelen += (int)r;
                line[linelen] = 0;
                char *nl;
                while ((nl = strchr(line, '\n'))) {
                    *nl = 0;
                    if (line[0] == 'W') {
                        window_cpu0 = rusage_cpu(RUSAGE_SELF);
                    } else if (line[0] == 'L') {
                        draining = 1;
                        /* churning subscribers never complete: stop now */
                        drain_deadline = mono_us() + (o_churn ? 0 : (uint64_t)(o_drain * 1e6));
                    } else if (line[0] == 'S') {
                        storm_begin(strtoull(line + 1, NULL, 10));
                    } else if (line[0] == 'Q') {
                        goto quit;
                    }
                    int used = (int)(nl + 1 - line);
                    memmove(line, nl + 1, linelen - used + 1);
                    linelen -= used;
                }
                continue;
            }
            on_event(c, evs[i].events, now);
            if (c->churn) churn_reconnect(c);
        }
    }
quit:
    /* losses: every live subscriber should have had every measured event */
    R.live = 0;
    for (int i = 0; i < n; i++) {
        conn *c = &conns[i];
        if (c->slow) {
            /* did the server give up on it?  Read what it left, up to EOF */
            if (c->state != S_DEAD && c->fd >= 0) {
                uint64_t quiet_since = mono_us(), give_up = quiet_since + 3000000;
                while (mono_us() - quiet_since < 300000 && mono_us() < give_up) {
                    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
                    if (r > 0) { R.slow_bytes += r; quiet_since = mono_us(); continue; }
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { c->state = S_DEAD; break; }
                    usleep(2000);
                }
            }
            if (c->state == S_DEAD) R.slow_closed++;
            continue;
        }
        if (!c->subscribed) continue;
        R.live++;
        R.lost += (uint64_t)o_events - c->got;
    }
    if (window_cpu0 >= 0) R.cpu_window_us = (uint64_t)((rusage_cpu(RUSAGE_SELF) - window_cpu0) * 1e6);
    for (int i = 0; i < n; i++) close_conn(&conns[i], 1);
    if (write_all(to_parent, (char *)&R, sizeof R) < 0) die("write result");
    exit(0);
}

/* ------------------------------------------------------------------ */
/* the parent: publisher and coordinator */

/* the measured window: when it opened, and the CPU times then */
static uint64_t t_window0 = 0;
static double cpu0 = 0, gen0 = 0, mach0 = 0, steal0 = 0;
static double pid_cpu0[MAXPIDS];

/* The warm-up is over: note the time and every CPU clock, and tell the
   children to count from here. */
static void open_window(const int *to_child) {
    t_window0 = mono_us();
    cpu0 = pids_cpu();
    memcpy(pid_cpu0, pid_cpu_at, sizeof pid_cpu0);
    mach0 = machine_busy(&steal0);
    gen0 = rusage_cpu(RUSAGE_SELF);
    for (int i = 0; i < o_procs; i++) dprintf(to_child[i], "W\n");
}

typedef struct pub {
    int fd;
    uint64_t seq;
    uint64_t started;
    int got;
    char resp[256];
    struct pub *next;
} pub;

static int pub_inflight = 0;
static uint64_t pub_ok = 0, pub_errors = 0;
static uint64_t pub_max_inflight = 0;

/* The publish request for event seq (its payload carries the marker and
   the send time), into req (70000 bytes); its length.  keepAlive: leave
   the connection open for the next. */
static int publish_request(char *req, uint64_t seq, int keepAlive) {
    char body[65536];
    int size = o_size < (int)sizeof body - 1 ? o_size : (int)sizeof body - 1;
    int m = snprintf(body, sizeof body, "~S%lluT%llu~", (unsigned long long)seq,
                     (unsigned long long)mono_us());
    if (size < m) size = m;
    memset(body + m, 'x', size - m);
    int hl = snprintf(req, 70000,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\n"
                      "Content-Length: %d\r\n%s\r\n",
                      o_pub_path, o_host, o_port, o_pub_type, size, keepAlive ? "" : "Connection: close\r\n");
    memcpy(req + hl, body, size);
    return hl + size;
}

static void pub_start(int pep, uint64_t seq) {
    pub *p = calloc(1, sizeof(pub));
    p->seq = seq;
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    p->started = mono_us();
    if (connect(p->fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 &&
        errno != EINPROGRESS) {
        pub_errors++;
        close(p->fd);
        free(p);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = p};
    epoll_ctl(pep, EPOLL_CTL_ADD, p->fd, &ev);
    pub_inflight++;
    if ((uint64_t)pub_inflight > pub_max_inflight) pub_max_inflight = pub_inflight;
}

static void pub_done(int pep, pub *p, int ok) {
    epoll_ctl(pep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    if (ok) pub_ok++;
    else {
        pub_errors++;
        if (pub_errors <= 3) fprintf(stderr, "loadgen: publish %llu failed: %.*s\n", (unsigned long long)p->seq, p->got > 120 ? 120 : p->got, p->resp);
    }
    pub_inflight--;
    free(p);
}

static void pub_event(int pep, pub *p, uint32_t events) {
    if (events & EPOLLOUT) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            pub_done(pep, p, 0);
            return;
        }
        char req[70000];
        if (write_all(p->fd, req, publish_request(req, p->seq, 0)) < 0) {
            pub_done(pep, p, 0);
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
        epoll_ctl(pep, EPOLL_CTL_MOD, p->fd, &ev);
        return;
    }
    char tmp[4096];
    ssize_t n = read(p->fd, tmp, sizeof tmp);
    if (n > 0) {
        int k = (int)n;
        if (p->got + k > (int)sizeof p->resp - 1) k = (int)sizeof p->resp - 1 - p->got;
        memcpy(p->resp + p->got, tmp, k);
        p->got += k;
        p->resp[p->got] = 0;
        return;
    }
    if (n < 0 && errno == EAGAIN) return;
    int status = p->got > 12 ? atoi(p->resp + 9) : 0;
    pub_done(pep, p, status >= 200 && status < 300);
}

/* ---- keep-alive publishers (--keepalive) ---- */

typedef struct kpub {
    int fd;
    int busy;
    int closing; /* the last answer said Connection: close */
    uint64_t seq;
    int got;
    char resp[8192];
} kpub;

static kpub *kpubs;
static uint64_t kpub_reconnects = 0;

static int kpub_connect(kpub *k) {
    k->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (k->fd < 0) return -1;
    if (connect(k->fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0) return -1;
    int one = 1;
    setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblock(k->fd);
    k->busy = 0;
    k->closing = 0;
    k->got = 0;
    return 0;
}

/* Close k's connection and open another in its place. */
static void kpub_reopen(int pep, kpub *k) {
    if (k->fd >= 0) {
        epoll_ctl(pep, EPOLL_CTL_DEL, k->fd, NULL);
        close(k->fd);
        k->fd = -1;
    }
    if (kpub_connect(k) == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
        epoll_ctl(pep, EPOLL_CTL_ADD, k->fd, &ev);
        kpub_reconnects++;
    } else if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
}

static int kpub_send(int pep, kpub *k, uint64_t seq) {
    char req[70000];
    if (write_all(k->fd, req, publish_request(req, seq, 1)) < 0) return -1;
    k->busy = 1;
    k->seq = seq;
    k->got = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
    epoll_ctl(pep, EPOLL_CTL_MOD, k->fd, &ev);
    return 0;
}

/* Whether k->resp holds a whole response: its status in *status. */
static int kpub_complete(kpub *k, int *status) {
    k->resp[k->got] = 0;
    char *end = strstr(k->resp, "\r\n\r\n");
    if (!end) return 0;
    int head = (int)(end - k->resp) + 4;
    *status = atoi(k->resp + 9);
    char value[32];
    if (header_value(k->resp, "content-length", value, sizeof value))
        return k->got >= head + atoi(value);
    if (header_value(k->resp, "transfer-encoding", value, sizeof value))
        return strstr(k->resp + head, "0\r\n\r\n") != NULL;
    return 1; /* no body */
}

/* Read what k's connection has; 1 when a response completed (ok in *ok),
   -1 when the connection failed, 0 otherwise. */
static int kpub_read(kpub *k, int *ok) {
    for (;;) {
        int room = (int)sizeof k->resp - 1 - k->got;
        if (room <= 0) {
            /* longer than we keep: whatever it says, it is whole when the
               server waits for the next request; count it as answered */
            k->got = 0;
            room = (int)sizeof k->resp - 1;
        }
        ssize_t n = read(k->fd, k->resp + k->got, room);
        if (n > 0) {
            k->got += (int)n;
            int status;
            if (kpub_complete(k, &status)) {
                *ok = status >= 200 && status < 300;
                char conn[32];
                k->closing = header_value(k->resp, "connection", conn, sizeof conn) && !strcasecmp(conn, "close");
                if (!*ok && pub_errors < 3)
                    fprintf(stderr, "loadgen: publish %llu failed: %.*s\n", (unsigned long long)k->seq,
                            k->got > 120 ? 120 : k->got, k->resp);
                k->busy = 0;
                k->got = 0;
                return 1;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return -1;
    }
}

static void parse_pids(const char *s) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *t = strtok(tmp, ","); t && n_pids < MAXPIDS; t = strtok(NULL, ","))
        pids[n_pids++] = atoi(t);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P --mode sse|stream|ws|sio|longpoll|nchan-longpoll|bayeux-ws|bayeux-longpoll\n"
            "  --path PATH [--bayeux-channel /CHANNEL]\n"
            "  [--subs N] [--pub-path PATH] [--rate R] [--warmup W] [--events E] [--size B]\n"
            "  [--drain S] [--slow K] [--hold S] [--procs P] [--pids p1,p2] [--header H]...\n"
            "  [--join-path PATH --join-body JSON] [--concurrency C] [--settle S] [--keepalive K] [--churn]\n"
            "  [--storm K [--storm-spread S] [--resume-param NAME]] [--sub-ports P1,P2] [--tls]\n"
            "  loadgen --has-tls: exits 0 when built with TLS\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"mode", 1, 0, 'm'}, {"path", 1, 0, 'P'},
        {"subs", 1, 0, 'n'}, {"pub-path", 1, 0, 'u'}, {"pub-type", 1, 0, 't'},
        {"rate", 1, 0, 'r'}, {"warmup", 1, 0, 'w'}, {"events", 1, 0, 'e'}, {"size", 1, 0, 's'},
        {"drain", 1, 0, 'd'}, {"slow", 1, 0, 'S'}, {"hold", 1, 0, 'H'}, {"procs", 1, 0, 'j'},
        {"pids", 1, 0, 'i'}, {"header", 1, 0, 'x'}, {"join-path", 1, 0, 'J'},
        {"join-body", 1, 0, 'B'}, {"concurrency", 1, 0, 'c'}, {"settle", 1, 0, 'T'},
        {"connect-timeout", 1, 0, 'C'}, {"bayeux-channel", 1, 0, 'b'}, {"src-ips", 1, 0, 'I'}, {"slow-rcvbuf", 1, 0, 'R'}, {"keepalive", 1, 0, 'K'}, {"churn", 0, 0, 'X'},
        {"sub-ports", 1, 0, 'o'}, {"tls", 0, 0, 'L'}, {"has-tls", 0, 0, 'G'}, {"storm", 1, 0, 'Y'}, {"storm-spread", 1, 0, 'Z'}, {"resume-param", 1, 0, 'q'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': o_host = optarg; break;
        case 'p': o_port = atoi(optarg); break;
        case 'm':
            if (!strcmp(optarg, "sse")) o_mode = M_SSE;
            else if (!strcmp(optarg, "stream")) o_mode = M_STREAM;
            else if (!strcmp(optarg, "ws")) o_mode = M_WS;
            else if (!strcmp(optarg, "sio")) o_mode = M_SIO;
            else if (!strcmp(optarg, "longpoll")) o_mode = M_LONGPOLL;
            else if (!strcmp(optarg, "nchan-longpoll")) o_mode = M_NCHAN_LP;
            else if (!strcmp(optarg, "bayeux-ws")) o_mode = M_BAYEUX_WS;
            else if (!strcmp(optarg, "bayeux-longpoll")) o_mode = M_BAYEUX_LP;
            else usage();
            break;
        case 'P': o_path = optarg; break;
        case 'n': o_subs = atoi(optarg); break;
        case 'u': o_pub_path = optarg; break;
        case 't': o_pub_type = optarg; break;
        case 'r': o_rate = atof(optarg); break;
        case 'w': o_warmup = atoi(optarg); break;
        case 'e': o_events = atoi(optarg); break;
        case 's': o_size = atoi(optarg); break;
        case 'd': o_drain = atof(optarg); break;
        case 'S': o_slow = atoi(optarg); break;
        case 'H': o_hold = atof(optarg); break;
        case 'j': o_procs = atoi(optarg); break;
        case 'i': snprintf(o_pids, sizeof o_pids, "%s", optarg); break;
        case 'x': {
            size_t l = strlen(o_headers);
            snprintf(o_headers + l, sizeof o_headers - l, "%s\r\n", optarg);
            break;
        }
        case 'J': o_join_path = optarg; break;
        case 'B': o_join_body = optarg; break;
        case 'c': o_concurrency = atoi(optarg); break;
        case 'T': o_settle = atof(optarg); break;
        case 'C': o_connect_timeout = atof(optarg); break;
        case 'I': o_src_ips = atoi(optarg); break;
        case 'R': o_slow_rcvbuf = atoi(optarg); break;
        case 'K': o_keepalive = atoi(optarg); break;
        case 'X': o_churn = 1; break;
        case 'L': o_tls = 1; break;
        case 'G':
            /* was this build made with OpenSSL?  (the benchmark asks) */
#ifdef LOADGEN_TLS
            exit(0);
#else
            exit(1);
#endif
        case 'o': snprintf(o_sub_ports, sizeof o_sub_ports, "%s", optarg); break;
        case 'Y': o_storm = atoi(optarg); break;
        case 'Z': o_storm_spread = atof(optarg); break;
        case 'q': o_resume_param = optarg; break;
        case 'b': o_bayeux_channel = optarg; break;
        default: usage();
        }
    }
    if (!o_port || o_subs < 0 || o_procs < 1 || o_events < 1) usage();
    if (o_join_path && !o_join_body) usage();
    if (o_tls) {
#ifdef LOADGEN_TLS
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx) die("SSL_CTX_new");
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        /* HTTP/1.1, as the subscribers speak it (a server would pick h2) */
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(tls_ctx, alpn, sizeof alpn - 1);
#else
        fprintf(stderr, "loadgen: built without TLS (gcc -DLOADGEN_TLS ... -lssl -lcrypto)\n");
        exit(2);
#endif
    }
    if (o_storm) {
        if (o_storm >= o_events || o_keepalive || o_churn) usage();
        /* where an event's id is: SSE's id line, the event JSON's "id" on
           a WebSocket (Socket.IO's offsets are read from whole frames) */
        if (o_mode == M_SSE) id_prefix = "\nid: ", id_term = '\n';
        else if (o_mode == M_WS) id_prefix = "\"id\":\"", id_term = '"';
        else if (o_mode != M_SIO) usage();
        id_plen = id_prefix ? (int)strlen(id_prefix) : 0;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    parse_pids(o_pids);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons(o_port);
    if (inet_pton(AF_INET, o_host, &server_addr.sin_addr) != 1) usage();
    for (char *t = strtok(o_sub_ports, ","); t && n_sub_addrs < 16; t = strtok(NULL, ",")) {
        sub_addrs[n_sub_addrs] = server_addr;
        sub_addrs[n_sub_addrs++].sin_port = htons(atoi(t));
    }

    int to_child[64], from_child[64];
    pid_t kids[64];
    if (o_procs > 64) o_procs = 64;
    uint64_t t_begin = mono_us();
    long rss_idle_before = pids_rss();
    for (int i = 0; i < o_procs; i++) {
        int a[2], b[2];
        if (pipe(a) || pipe(b)) die("pipe");
        int first = (int)((long)o_subs * i / o_procs), last = (int)((long)o_subs * (i + 1) / o_procs);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(a[1]);
            close(b[0]);
            for (int j = 0; j < i; j++) { close(to_child[j]); close(from_child[j]); }
            child_main(i, first, last - first, b[1], a[0]);
        }
        close(a[0]);
        close(b[1]);
        to_child[i] = a[1];
        from_child[i] = b[0];
        kids[i] = pid;
    }

    /* wait until every child has its subscribers connected */
    uint64_t connected = 0, failed = 0;
    for (int i = 0; i < o_procs; i++) {
        char line[128];
        int l = 0;
        while (l < (int)sizeof line - 1) {
            ssize_t r = read(from_child[i], line + l, 1);
            if (r <= 0) die("child died while connecting");
            if (line[l] == '\n') break;
            l++;
        }
        line[l] = 0;
        int idx;
        unsigned long long ok, bad;
        if (sscanf(line, "C %d %llu %llu", &idx, &ok, &bad) == 3) {
            connected += ok;
            failed += bad;
        }
    }
    double connect_s = (mono_us() - t_begin) / 1e6;
    usleep((useconds_t)(o_settle * 1e6));
    long rss_ready = pids_rss();
    fprintf(stderr, "loadgen: %llu connected, %llu failed in %.1fs; server RSS %ld KiB\n",
            (unsigned long long)connected, (unsigned long long)failed, connect_s, rss_ready);
    printf("READY %llu %llu %.3f %ld\n", (unsigned long long)connected,
           (unsigned long long)failed, connect_s, rss_ready);
    fflush(stdout);

    double cpu1 = 0, gen1 = 0, mach1 = 0, steal1 = 0;
    uint64_t t_window1 = 0, t_last_pub = 0;
    long rss_peak = rss_ready;
    if (o_pub_path && o_keepalive > 0) {
        /* publish as fast as K keep-alive connections are answered */
        int pep = epoll_create1(0);
        uint64_t total = (uint64_t)o_warmup + o_events, seq = 0, answered = 0;
        kpubs = calloc(o_keepalive, sizeof(kpub));
        for (int i = 0; i < o_keepalive; i++) {
            if (kpub_connect(&kpubs[i]) < 0) die("connecting a keep-alive publisher");
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &kpubs[i]};
            epoll_ctl(pep, EPOLL_CTL_ADD, kpubs[i].fd, &ev);
        }
        uint64_t last_progress = mono_us(), next_rss = mono_us();
        while (answered < total) {
            for (int i = 0; i < o_keepalive && seq < total; i++) {
                kpub *k = &kpubs[i];
                if (k->closing && !k->busy) {
                    /* the server said it closes this one: use a new one */
                    kpub_reopen(pep, k);
                    k->closing = 0;
                }
                if (k->busy || k->fd < 0) continue;
                seq++;
                if (seq == (uint64_t)o_warmup + 1) open_window(to_child);
                if (kpub_send(pep, k, seq) < 0) {
                    pub_errors++;
                    answered++;
                    close(k->fd);
                    k->fd = -1;
                }
                if (seq == total) t_last_pub = mono_us();
            }
            struct epoll_event evs[64];
            int n = epoll_wait(pep, evs, 64, 50);
            for (int i = 0; i < n; i++) {
                kpub *k = evs[i].data.ptr;
                int ok = 0, r = kpub_read(k, &ok);
                if (r == 1) {
                    answered++;
                    if (ok) pub_ok++;
                    else pub_errors++;
                    last_progress = mono_us();
                } else if (r < 0) {
                    /* the server closed the connection (nginx does after
                       keepalive_requests): a request in flight on it
                       failed; open another, as a keep-alive client does */
                    if (k->busy) { pub_errors++; answered++; }
                    k->busy = 0;
                    kpub_reopen(pep, k);
                }
            }
            uint64_t now = mono_us();
            if (now >= next_rss) {
                long rss = pids_rss();
                if (rss > rss_peak) rss_peak = rss;
                next_rss = now + 200000;
            }
            int alive = 0;
            for (int i = 0; i < o_keepalive; i++) alive += kpubs[i].fd >= 0;
            if (!alive || now - last_progress > 30000000ull) break;
        }
        pub_max_inflight = o_keepalive;
        for (int i = 0; i < o_procs; i++) dprintf(to_child[i], "L\n");
    } else if (o_pub_path) {
        int pep = epoll_create1(0);
        uint64_t total = (uint64_t)o_warmup + o_events, seq = 0;
        uint64_t t0 = mono_us();
        double interval = 1e6 / o_rate;
        uint64_t next_rss = t0;
        while (seq < total || pub_inflight > 0) {
            uint64_t now = mono_us();
            while (seq < total && now >= t0 + (uint64_t)(seq * interval)) {
                seq++;
                if (seq == (uint64_t)o_warmup + 1) open_window(to_child);
                pub_start(pep, seq);
                if (seq == total) t_last_pub = mono_us();
                if (o_storm && seq == (uint64_t)(o_warmup + o_storm))
                    for (int i = 0; i < o_procs; i++) dprintf(to_child[i], "S %llu\n", (unsigned long long)seq);
            }
            if (now >= next_rss) {
                long rss = pids_rss();
                if (rss > rss_peak) rss_peak = rss;
                next_rss = now + 200000;
            }
            int timeout = 1;
            if (seq < total) {
                int64_t wait = (int64_t)(t0 + (uint64_t)(seq * interval)) - (int64_t)mono_us();
                timeout = wait > 0 ? (int)(wait / 1000) : 0;
                if (timeout > 200) timeout = 200;
            } else if (mono_us() - t_last_pub > 30000000ull) {
                break; /* a publish that never answers */
            } else {
                timeout = 50;
            }
            struct epoll_event evs[64];
            int k = epoll_wait(pep, evs, 64, timeout);
            for (int i = 0; i < k; i++) pub_event(pep, evs[i].data.ptr, evs[i].events);
        }
        for (int i = 0; i < o_procs; i++) dprintf(to_child[i], "L\n");
    } else {
        /* idle: hold the connections for --hold seconds, or (no --hold)
           until stdin closes */
        uint64_t until = mono_us() + (uint64_t)(o_hold * 1e6);
        while (o_hold <= 0 || mono_us() < until) {
            fd_set rf;
            FD_ZERO(&rf);
            if (o_hold <= 0) FD_SET(0, &rf);
            struct timeval tv = {0, 200000};
            int r = select(1, &rf, NULL, NULL, &tv);
            if (r > 0 && o_hold <= 0) {
                char tmp[64];
                if (read(0, tmp, sizeof tmp) <= 0) break;
            }
            long rss = pids_rss();
            if (rss > rss_peak) rss_peak = rss;
        }
        for (int i = 0; i < o_procs; i++) dprintf(to_child[i], "Q\n");
    }

    /* gather the children's results; the server is idle again once they
       have all finished draining */
    struct result total;
    memset(&total, 0, sizeof total);
    for (int i = 0; i < o_procs; i++) {
        struct result r;
        size_t got = 0;
        while (got < sizeof r) {
            ssize_t n = read(from_child[i], (char *)&r + got, sizeof r - got);
            if (n <= 0) die("reading a child's result");
            got += n;
            if (o_pub_path) {
                long rss = pids_rss();
                if (rss > rss_peak) rss_peak = rss;
            }
        }
        uint64_t *a = (uint64_t *)&total, *b = (uint64_t *)&r;
        size_t nsum = offsetof(struct result, first_delivery_us) / 8;
        for (size_t k = 0; k < nsum; k++) a[k] += b[k];
        for (int k = 0; k < HBUCKETS; k++) total.hist[k] += r.hist[k];
        if (r.first_delivery_us && (!total.first_delivery_us || r.first_delivery_us < total.first_delivery_us))
            total.first_delivery_us = r.first_delivery_us;
        if (r.last_delivery_us > total.last_delivery_us) total.last_delivery_us = r.last_delivery_us;
        if (r.max_latency_us > total.max_latency_us) total.max_latency_us = r.max_latency_us;
        for (int k = 0; k < HBUCKETS; k++) total.storm_hist[k] += r.storm_hist[k];
        if (r.storm_reconnect_max_us > total.storm_reconnect_max_us)
            total.storm_reconnect_max_us = r.storm_reconnect_max_us;
        if (r.storm_resume_max_us > total.storm_resume_max_us) total.storm_resume_max_us = r.storm_resume_max_us;
    }
    t_window1 = mono_us();
    cpu1 = pids_cpu();
    mach1 = machine_busy(&steal1);
    gen1 = rusage_cpu(RUSAGE_SELF);
    long rss_end = pids_rss();
    int status;
    for (int i = 0; i < o_procs; i++) waitpid(kids[i], &status, 0);
    double gen_children = rusage_cpu(RUSAGE_CHILDREN);
    double gen_window = (gen1 - gen0) + total.cpu_window_us / 1e6;

    printf("{\"connected\": %llu, \"failed\": %llu, \"connect_s\": %.3f, "
           "\"rss_before_kib\": %ld, \"rss_ready_kib\": %ld, \"rss_peak_kib\": %ld, \"rss_end_kib\": %ld, "
           "\"published\": %llu, \"publish_errors\": %llu, \"publish_max_inflight\": %llu, \"publish_reconnects\": %llu, "
           "\"live\": %llu, \"expected\": %llu, \"deliveries\": %llu, \"lost\": %llu, "
           "\"duplicates\": %llu, \"out_of_order\": %llu, \"disconnects\": %llu, "
           "\"slow\": %d, \"slow_closed\": %llu, \"http_errors\": %llu, \"requests\": %llu, "
           "\"bytes_read\": %llu, ",
           (unsigned long long)connected, (unsigned long long)failed, connect_s, rss_idle_before,
           rss_ready, rss_peak, rss_end, (unsigned long long)pub_ok,
           (unsigned long long)pub_errors, (unsigned long long)pub_max_inflight,
           (unsigned long long)kpub_reconnects,
           (unsigned long long)total.live, (unsigned long long)(total.live * (uint64_t)o_events),
           (unsigned long long)total.deliveries, (unsigned long long)total.lost,
           (unsigned long long)total.duplicates, (unsigned long long)total.out_of_order,
           (unsigned long long)total.disconnects, o_slow, (unsigned long long)total.slow_closed,
           (unsigned long long)total.http_errors, (unsigned long long)total.requests,
           (unsigned long long)total.bytes_read);
    uint64_t nlat = 0;
    for (int i = 0; i < HBUCKETS; i++) nlat += total.hist[i];
    double window = t_window0 ? (t_window1 - t_window0) / 1e6 : 0;
    double active = (t_window0 && total.last_delivery_us > t_window0)
                        ? (total.last_delivery_us - t_window0) / 1e6 : 0;
    printf("\"latency_us\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"p999\": %llu, "
           "\"max\": %llu}, ",
           (unsigned long long)hist_pct(total.hist, nlat, 50),
           (unsigned long long)hist_pct(total.hist, nlat, 90),
           (unsigned long long)hist_pct(total.hist, nlat, 99),
           (unsigned long long)hist_pct(total.hist, nlat, 99.9),
           (unsigned long long)total.max_latency_us);
    if (o_storm) {
        printf("\"storm\": {\"dropped\": %llu, \"reconnected\": %llu, \"resumed\": %llu, \"retries\": %llu, "
               "\"reconnect_max_us\": %llu, \"resume_us\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, "
               "\"max\": %llu}}, ",
               (unsigned long long)total.storm_dropped, (unsigned long long)total.storm_reconnected,
               (unsigned long long)total.storm_resumed, (unsigned long long)total.storm_retries,
               (unsigned long long)total.storm_reconnect_max_us,
               (unsigned long long)hist_pct(total.storm_hist, total.storm_resumed, 50),
               (unsigned long long)hist_pct(total.storm_hist, total.storm_resumed, 90),
               (unsigned long long)hist_pct(total.storm_hist, total.storm_resumed, 99),
               (unsigned long long)total.storm_resume_max_us);
    }
    printf("\"server_cpu_by_pid\": {");
    for (int i = 0; i < n_pids; i++)
        printf("%s\"%d\": %.3f", i ? ", " : "", pids[i], t_window0 ? pid_cpu_at[i] - pid_cpu0[i] : 0.0);
    printf("}, ");
    printf("\"window_s\": %.3f, \"active_s\": %.3f, \"publish_s\": %.3f, \"server_cpu_s\": %.3f, "
           "\"gen_cpu_s\": %.3f, \"gen_total_cpu_s\": %.3f, \"machine_cpu_s\": %.3f, "
           "\"steal_s\": %.3f, \"slow_bytes\": %llu}\n",
           window, active, t_last_pub && t_window0 ? (t_last_pub - t_window0) / 1e6 : 0,
           cpu1 - cpu0, gen_window, gen_children + gen1, t_window0 ? mach1 - mach0 : 0,
           t_window0 ? steal1 - steal0 : 0, (unsigned long long)total.slow_bytes);
    return 0;
}
