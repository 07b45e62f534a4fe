// Drives an unchanged Bayeux client library (Faye or CometD) for the
// txcomet interop tests: commands arrive as JSON lines on stdin, and what
// the client sees is written as JSON lines on stdout.
//
//   node driver.mjs faye|cometd URL long-polling|websocket
//
// Commands: {"op": "subscribe"|"unsubscribe", "channel": C}
//           {"op": "publish", "channel": C, "data": D}
//           {"op": "call", "target": T, "data": D} (CometD's remoteCall)
//           {"op": "disconnect"}  {"op": "exit"}
// Output:   {"handshake": clientId}   {"connected": connection type}
//           {"subscribed": C}   {"unsubscribed": C}
//           {"message": {"channel", "data"}, "subscription": C}
//           {"published": C, "successful": bool}
//           {"called": T, "successful": bool, "data": the answer}
//           {"disconnected": true}    {"failure": text}
// Applications resubscribe as each library's documentation says: Faye by
// itself after a new handshake, CometD in a /meta/handshake listener.

import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(import.meta.url);
const [lib, url, transport] = process.argv.slice(2);

function emit(value) {
    process.stdout.write(JSON.stringify(value) + "\n");
}

function fayeClient() {
    const faye = require("faye");
    const client = new faye.Client(url, { retry: 0.5 });
    if (transport !== "websocket") {
        client.disable("websocket");
    }
    client.addExtension({
        incoming(message, callback) {
            if (message.successful) {
                if (message.channel === "/meta/handshake") emit({ handshake: message.clientId, transport: client._dispatcher.connectionType });
                if (message.channel === "/meta/subscribe") emit({ subscribed: message.subscription });
                if (message.channel === "/meta/unsubscribe") emit({ unsubscribed: message.subscription });
                if (message.channel === "/meta/connect") emit({ connected: client._dispatcher.connectionType });
            } else if (message.error) {
                emit({ failure: message.error, channel: message.channel });
            }
            callback(message);
        },
    });
    const subscriptions = {};
    return {
        subscribe(channel) {
            subscriptions[channel] = client.subscribe(channel, (data) => {
                emit({ message: { data }, subscription: channel });
            });
        },
        unsubscribe(channel) {
            subscriptions[channel].cancel();
            delete subscriptions[channel];
        },
        publish(channel, data) {
            client.publish(channel, data).then(
                () => emit({ published: channel, successful: true }),
                (error) => emit({ published: channel, successful: false, error: String(error && error.message) }),
            );
        },
        disconnect() {
            const done = client.disconnect();
            if (done && done.then) done.then(() => emit({ disconnected: true }));
            else emit({ disconnected: true });
        },
    };
}

async function cometdClient() {
    const { adapt } = await import("cometd-nodejs-client");
    adapt();
    const { CometD, AckExtension } = await import("cometd");
    const cometd = new CometD();
    cometd.configure({ url, logLevel: "warn", backoffIncrement: 200, maxBackoff: 1000 });
    if (process.env.BAYEUX_ACK) {
        cometd.registerExtension("ack", new AckExtension());
    }
    if (transport !== "websocket") {
        cometd.unregisterTransport("websocket");
    }
    const wanted = new Set();
    const handles = {};
    function subscribe(channel) {
        handles[channel] = cometd.subscribe(
            channel,
            (message) => emit({ message: { channel: message.channel, data: message.data }, subscription: channel }),
            (reply) => {
                if (reply.successful) emit({ subscribed: channel });
                else emit({ failure: reply.error, channel });
            },
        );
    }
    cometd.addListener("/meta/handshake", (message) => {
        if (message.successful) {
            emit({ handshake: message.clientId, transport: cometd.getTransport().type, ext: message.ext || null });
            // The documented way: (re)subscribe whenever a handshake succeeds.
            cometd.batch(() => wanted.forEach(subscribe));
        } else {
            emit({ failure: message.error, channel: message.channel });
        }
    });
    cometd.addListener("/meta/connect", (message) => {
        if (message.successful) emit({ connected: cometd.getTransport().type });
        else if (message.error) emit({ failure: message.error, channel: message.channel });
    });
    cometd.handshake();
    return {
        subscribe(channel) {
            wanted.add(channel);
            if (cometd.getClientId()) subscribe(channel);
        },
        unsubscribe(channel) {
            wanted.delete(channel);
            cometd.unsubscribe(handles[channel], (reply) => {
                if (reply.successful) emit({ unsubscribed: channel });
                else emit({ failure: reply.error, channel });
            });
            delete handles[channel];
        },
        publish(channel, data) {
            cometd.publish(channel, data, (reply) => emit({ published: channel, successful: reply.successful }));
        },
        call(target, data) {
            cometd.remoteCall(target, data, 10000, (reply) =>
                emit({ called: target, successful: reply.successful, data: reply.data }),
            );
        },
        disconnect() {
            cometd.disconnect(() => emit({ disconnected: true }));
        },
    };
}

const client = lib === "faye" ? fayeClient() : await cometdClient();
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
    if (!line.trim()) return;
    const command = JSON.parse(line);
    switch (command.op) {
        case "subscribe": client.subscribe(command.channel); break;
        case "unsubscribe": client.unsubscribe(command.channel); break;
        case "publish": client.publish(command.channel, command.data); break;
        case "call": client.call(command.target, command.data); break;
        case "disconnect": client.disconnect(); break;
        case "exit": process.exit(0);
    }
});
lines.on("close", () => process.exit(0));
emit({ ready: lib });
