#!/usr/bin/env python3
"""A Python service on tickbus's wire format (docs/wire-format.md) using only redis-py and json:
a bot that registers a ticker and reads the broker's prices, and TickStock-style publishers."""
# Tested by test/integration/python-interop.test.ts against a real broker. Run with Debian's
# interpreter and its redis module: /usr/bin/python3 (apt-get install python3-redis).
#
#   REDIS_URL=redis://127.0.0.1:6379 /usr/bin/python3 test/python/tickbus_wire.py register AAPL 3
#   ... publish-progress JOB_ID | publish-invalid
#   ... seed002-patterns N | seed003-patterns N   (the seeds' own subscribers, printing what they get)
import json
import logging
import threading
import os
import sys
import time
from datetime import datetime, timezone

try:
    import redis
except ImportError:
    sys.stderr.write("tickbus_wire.py needs redis-py: install it with apt-get install python3-redis "
                     "and run this with /usr/bin/python3\n")
    sys.exit(3)

SENDER = "py_bot"
REGISTRATION = "BROKER_REGISTRATION"
PROGRESS = "tickstock.events.backtesting.progress"
# Long enough for a broker to start and stream; short enough that a broken run fails fast.
DEADLINE_SECONDS = 20.0


def now_iso():
    """The envelope timestamp as the broker writes it: UTC, milliseconds, a Z suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(data):
    """Broker-catalog channels carry {"data", "timestamp", "sender"} (seed 001's envelope)."""
    return json.dumps({"data": data, "timestamp": now_iso(), "sender": SENDER})


def connect():
    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), decode_responses=True)


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def register(ticker, count):
    r = connect()
    ticker = ticker.strip().upper()
    channel = "TICKER_UPDATES_" + ticker
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    # Subscribe before registering, so the first updates the broker sends are not missed.
    pubsub.subscribe(channel)
    deadline = time.monotonic() + DEADLINE_SECONDS
    registration = envelope({"action": "subscribe", "ticker": ticker})
    # PUBLISH returns how many subscribers got it: 0 means no broker is listening yet, so
    # repeat until one is (repeating only renews the broker's lease).
    while r.publish(REGISTRATION, registration) == 0:
        if time.monotonic() > deadline:
            fail("no broker received the registration on " + REGISTRATION)
        time.sleep(0.5)
        registration = envelope({"action": "subscribe", "ticker": ticker})

    printed = 0
    while printed < count:
        if time.monotonic() > deadline:
            fail("received %d of %d price updates on %s" % (printed, count, channel))
        message = pubsub.get_message(timeout=0.5)
        if message is None or message["type"] != "message":
            continue
        payload = json.loads(message["data"])
        update = payload.get("data")
        # Order updates share the channel; this bot reads prices only.
        if not isinstance(update, dict) or update.get("type") != "price":
            continue
        print(json.dumps({
            "symbol": update.get("symbol"),
            "price": update.get("price"),
            "volume": update.get("volume"),
            "sender": payload.get("sender"),
        }), flush=True)
        printed += 1
    pubsub.close()
    r.close()


def publish_progress(job_id):
    r = connect()
    # TickStock channels are bare: the data object itself, as seed 003's worker sends it.
    progress = {"job_id": job_id, "progress": 0.5, "status": "running", "timestamp": time.time()}
    print(json.dumps({"channel": PROGRESS, "receivers": r.publish(PROGRESS, json.dumps(progress))}), flush=True)
    r.close()


def publish_invalid():
    r = connect()
    # A well-formed envelope whose data breaks the schema: "register" is not an action.
    bad = envelope({"action": "register", "ticker": "AAPL"})
    print(json.dumps({"channel": REGISTRATION, "receivers": r.publish(REGISTRATION, bad)}), flush=True)
    r.close()


def stream_key(channel):
    """A durable channel (or a channel's history) is the stream tickbus:{CHANNEL}:stream."""
    return "tickbus:{%s}:stream" % channel


def append_durable(channel, count):
    """Produces on a durable channel: XADD of the envelope, with an id, in the field "payload"."""
    r = connect()
    for n in range(count):
        body = {"data": {"n": n}, "timestamp": now_iso(), "sender": SENDER, "id": "py-%d-%d" % (os.getpid(), n)}
        position = r.xadd(stream_key(channel), {"payload": json.dumps(body)}, maxlen=100000, approximate=True)
        print(json.dumps({"n": n, "position": position}), flush=True)
    r.close()


def group_entries(r, key, group, consumer, count, batch, what):
    """Joins the consumer group (created at the start of the stream if missing) and yields
    (position, fields) of `count` entries, failing if they do not come in time."""
    try:
        r.xgroup_create(key, group, id="0", mkstream=True)
    except redis.exceptions.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    done = 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    while done < count:
        if time.monotonic() > deadline:
            fail("got %d of %d %s before the deadline" % (done, count, what))
        for _stream, entries in r.xreadgroup(group, consumer, {key: ">"}, count=batch, block=1000) or []:
            for entry in entries:
                yield entry
                done += 1


def consume_durable(channel, group, count):
    """A member of a consumer group: read, handle, then XACK, as tickbus's own consumers do."""
    r = connect()
    key = stream_key(channel)
    for position, fields in group_entries(r, key, group, "py-consumer", count, 100, "messages"):
        body = json.loads(fields["payload"])
        print(json.dumps({"n": body["data"]["n"], "id": body.get("id"), "position": position, "sender": body["sender"]}), flush=True)
        r.xack(key, group, position)
    r.close()


JOBS_STREAM = stream_key("tickstock.jobs.backtest")
JOB_GROUP = "backtest-workers"
RESULTS = "tickstock.events.backtesting.results"


def move_job(r, job_id, allowed, status, **fields):
    """Moves job:<id> to status if it is in one of allowed (an optimistic WATCH/MULTI, as
    docs/jobs.md describes); returns the status found."""
    key = "job:" + job_id
    with r.pipeline() as p:
        while True:
            try:
                p.watch(key)
                current = p.hget(key, "status")
                if current not in allowed:
                    p.unwatch()
                    return current
                p.multi()
                p.hset(key, mapping={"status": status, "updated_at": now_iso(), **fields})
                p.execute()
                return current
            except redis.WatchError:
                continue


def backtest_worker(count):
    """A TickStockPL-style worker in Python: takes jobs from the group, reports progress and
    a result on the seed's channels, keeps the job record, acknowledges."""
    r = connect()
    for position, fields in group_entries(r, JOBS_STREAM, JOB_GROUP, "py-worker", count, 1, "jobs"):
        job = json.loads(fields["payload"])  # the seed's backtest request, bare
        job_id = job["job_id"]
        found = move_job(r, job_id, ("submitted", "running"), "running", started_at=now_iso(), worker="py-worker", attempts=1)
        if found in ("submitted", "running"):
            for fraction in (0.5, 1.0):
                r.hset("job:" + job_id, mapping={"progress": fraction})
                r.publish(PROGRESS, json.dumps({"job_id": job_id, "progress": fraction, "status": "running", "timestamp": time.time()}))
            results = {"trades": len(job["symbols"]) * 3, "engine": "python"}
            move_job(r, job_id, ("running",), "completed", result=json.dumps(results), finished_at=now_iso())
            r.publish(RESULTS, json.dumps({"job_id": job_id, "status": "completed", "results": results, "timestamp": time.time()}))
        print(json.dumps({"job_id": job_id, "found": found, "position": position}), flush=True)
        r.xack(JOBS_STREAM, JOB_GROUP, position)
    r.close()


# ---- The seeds' TickStockAppV2 subscribers, as the seeds write them -------------------------
# They print each event they take as one JSON line {"channel", "event"} and stop after N.
# The code follows seed 002 (MyEventSubscriber) and seed 003 (TickStockEventSubscriber);
# only the callbacks (print instead of a WebSocket emit) and the stop after N are ours.

logger = logging.getLogger(__name__)


class MyEventSubscriber:
    """Seed 002: Redis pub-sub subscriber for TickStock events."""

    def __init__(self, redis_client):
        self.redis_client = redis_client
        self.pubsub = None
        self.is_running = False

    def subscribe(self, callback):
        try:
            self.pubsub = self.redis_client.pubsub()
            self.pubsub.psubscribe('tickstock:patterns:*')
            logger.info("Subscribed to tickstock:patterns:*")
            self.is_running = True
            for message in self.pubsub.listen():
                if not self.is_running:
                    break
                if message['type'] == 'pmessage':
                    try:
                        data = json.loads(message['data'])
                        event_dict = dict(data) if not isinstance(data, dict) else data
                        # (Ours: the callback is also told the channel, to print it.)
                        callback(event_dict, message['channel'])
                    except json.JSONDecodeError as e:
                        logger.error(f"Invalid JSON in Redis message: {e}")
                    except KeyError as e:
                        logger.error(f"Missing key in message: {e}")
                    except Exception as e:
                        logger.error(f"Error processing Redis message: {e}")
        except redis.ConnectionError as e:
            logger.error(f"Redis connection lost: {e}")
            self.is_running = False
            raise
        finally:
            self.stop()

    def stop(self):
        self.is_running = False
        if self.pubsub:
            try:
                self.pubsub.unsubscribe()
                self.pubsub.close()
            except Exception as e:
                logger.error(f"Error closing pubsub: {e}")
            self.pubsub = None


class TickStockEventSubscriber:
    """Seed 003: consumes TickStockPL's events (flask_socketio's emit replaced by a callback)."""

    def __init__(self, redis_url='redis://localhost:6379/0', emit=None):
        self.redis_client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.pubsub = self.redis_client.pubsub()
        self.running = False
        self.emit = emit

    def start_listening(self):
        channels = [
            'tickstock.events.patterns',
            'tickstock.events.backtesting.progress',
            'tickstock.events.backtesting.results'
        ]
        self.pubsub.subscribe(channels)
        self.running = True
        thread = threading.Thread(target=self._listen_loop, daemon=True)
        thread.start()
        return thread

    def _listen_loop(self):
        for message in self.pubsub.listen():
            if not self.running:
                break
            if message['type'] == 'message':
                self._process_message(message['channel'], message['data'])

    def _process_message(self, channel, data):
        try:
            event_data = json.loads(data)
            if channel == 'tickstock.events.patterns':
                self._handle_pattern_event(event_data)
            elif 'backtesting' in channel:
                self._handle_backtest_event(event_data)
        except json.JSONDecodeError:
            print(f"Invalid JSON in channel {channel}: {data}", file=sys.stderr)

    def _handle_pattern_event(self, event_data):
        self.emit('pattern_alert', 'tickstock.events.patterns', event_data)

    def _handle_backtest_event(self, event_data):
        self.emit('backtest_update', None, event_data)


def watchdog(what):
    """Fails the run if the events do not come in time (the seeds' loops block for ever)."""
    timer = threading.Timer(DEADLINE_SECONDS, lambda: (sys.stderr.write("timed out waiting for " + what + "\n"), os._exit(1)))
    timer.daemon = True
    timer.start()


def seed002_patterns(count):
    subscriber = MyEventSubscriber(connect())
    taken = []

    def callback(event, channel):
        print(json.dumps({"channel": channel, "event": event}), flush=True)
        taken.append(event)
        if len(taken) >= count:
            subscriber.stop()

    watchdog("%d events on tickstock:patterns:*" % count)
    subscriber.subscribe(callback)


def seed003_patterns(count):
    done = threading.Event()
    taken = []

    def emit(name, channel, event):
        if name != 'pattern_alert':
            return
        print(json.dumps({"channel": channel, "event": event}), flush=True)
        taken.append(event)
        if len(taken) >= count:
            done.set()

    subscriber = TickStockEventSubscriber(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), emit)
    subscriber.start_listening()
    if not done.wait(DEADLINE_SECONDS):
        fail("got %d of %d events on tickstock.events.patterns" % (len(taken), count))
    subscriber.running = False


USAGE = ("usage: tickbus_wire.py register TICKER N | publish-progress JOB_ID | publish-invalid"
         " | append-durable CHANNEL N | consume-durable CHANNEL GROUP N | backtest-worker N"
         " | seed002-patterns N | seed003-patterns N")


def main(argv):
    if len(argv) == 3 and argv[0] == "register" and argv[2].isdigit():
        register(argv[1], int(argv[2]))
    elif len(argv) == 2 and argv[0] == "publish-progress":
        publish_progress(argv[1])
    elif argv == ["publish-invalid"]:
        publish_invalid()
    elif len(argv) == 3 and argv[0] == "append-durable" and argv[2].isdigit():
        append_durable(argv[1], int(argv[2]))
    elif len(argv) == 4 and argv[0] == "consume-durable" and argv[3].isdigit():
        consume_durable(argv[1], argv[2], int(argv[3]))
    elif len(argv) == 2 and argv[0] == "backtest-worker" and argv[1].isdigit():
        backtest_worker(int(argv[1]))
    elif len(argv) == 2 and argv[0] == "seed002-patterns" and argv[1].isdigit():
        seed002_patterns(int(argv[1]))
    elif len(argv) == 2 and argv[0] == "seed003-patterns" and argv[1].isdigit():
        seed003_patterns(int(argv[1]))
    else:
        sys.stderr.write(USAGE + "\n")
        sys.exit(2)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except redis.exceptions.ConnectionError as error:
        fail("cannot reach Redis at %s: %s" % (os.environ.get("REDIS_URL", "redis://localhost:6379/0"), error))
