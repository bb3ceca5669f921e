#!/usr/bin/env python3
"""Reference model service for Esurio: consumes enrichment events, writes results back.

The contract it follows (event format, write-back topics and fields, lineage) is explained in
README.md beside this file. In short:

  <prefix>news_article.enriched  ->  naive keyword sentiment per article  ->  <prefix>sentiment_update
  <prefix>market_data.enriched   ->  20-tick moving average per symbol     ->  <prefix>feature (sma_20)
                                                                            ->  <prefix>insight (regime)

Every result names the enrichment event ids it was computed from in `inputs`, which is what
`esurio lineage` walks back. Repeated events (same event_id) are dropped. The service runs until
its input topics are idle for --idle-exit seconds, flushes what it produced, commits its consumer
offsets and prints a JSON summary on stdout.

Deterministic on purpose (the round-trip test recomputes every value): the moving average and the
regime are computed once, over the last 20 ticks per symbol seen in the run (a production service
would keep its window as state and emit on every tick); every time it writes comes from the input
events, not the wall clock, so the same events always give identical records (which the worker
drops as duplicates when they are sent again).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

SENTIMENT_MODEL = "kw-sentiment"
SENTIMENT_MODEL_VERSION = "1"
REGIME_MODEL = "ref-regime"
REGIME_MODEL_VERSION = "1"
WINDOW = 20

# The keyword lists of the naive sentiment (tests/it/roundtrip.rs keeps a copy: change both).
POSITIVE = frozenset(
    """beat beats bullish gain gains growth improve improved outperform profit profitable
    rally record rise rises strong surge surges upgrade upgraded""".split()
)
NEGATIVE = frozenset(
    """bearish cut cuts decline declines downgrade downgraded fall falls fraud lawsuit loss
    losses miss misses plunge plunges weak weaker""".split()
)
NON_LETTERS = re.compile(r"[^a-z]+")


def sentiment(title: str, body: str | None) -> float:
    """(pos - neg) / (pos + neg) over the words of title + body (lowercased, split on anything that
    is not a letter a-z); 0.0 when no word of either list occurs."""
    words = NON_LETTERS.split(f"{title} {body or ''}".lower())
    pos = sum(1 for w in words if w in POSITIVE)
    neg = sum(1 for w in words if w in NEGATIVE)
    return 0.0 if pos + neg == 0 else (pos - neg) / (pos + neg)


def regime_confidence(last: float, sma: float) -> float:
    """How far the last close is from the average, squashed into [0, 1): r / (r + 0.01) with
    r = |last - sma| / sma (a 1% gap gives 0.5). Deterministic, so the test can recompute it."""
    r = abs(last - sma) / sma
    return r / (r + 0.01)


def parse_ts(s: str) -> datetime:
    # Python 3.11 reads RFC 3339 with 'Z' and any number of fraction digits up to 6.
    return datetime.fromisoformat(s)


@dataclass
class Tick:
    ts: str
    close: float
    event_id: str
    order: tuple  # (ts, partition, offset): event order, ties broken by the Kafka position


@dataclass
class State:
    seen: set[str] = field(default_factory=set)
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    repeats: int = 0
    ticks: dict[str, list[Tick]] = field(default_factory=lambda: defaultdict(list))
    produced: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    skipped: dict[str, int] = field(default_factory=dict)


class WriteBack:
    """Produces write-back records; creates a write-back topic (only) when it first needs it and the
    broker does not have it (brokers usually do not auto-create topics)."""

    def __init__(self, brokers: str, prefix: str, partitions: int):
        self.prefix = prefix
        self.partitions = partitions
        self.admin = AdminClient({"bootstrap.servers": brokers})
        self.producer = Producer(
            {
                "bootstrap.servers": brokers,
                # No duplicates from producer retries; the worker drops the rest (same key and values).
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
            }
        )
        self.ready: set[str] = set()
        self.errors: list[str] = []

    def _ensure(self, topic: str) -> None:
        if topic in self.ready:
            return
        existing = self.admin.list_topics(timeout=10).topics
        if topic not in existing:
            fs = self.admin.create_topics(
                [NewTopic(topic, num_partitions=self.partitions, replication_factor=-1)],
                operation_timeout=30,
            )
            for t, f in fs.items():
                try:
                    f.result()
                    print(f"model: created topic {t}", file=sys.stderr)
                except KafkaException as e:
                    if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
        self.ready.add(topic)

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")

    def send(self, family: str, key: str, value: dict, state: State) -> None:
        topic = self.prefix + family
        self._ensure(topic)
        payload = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        while True:
            try:
                self.producer.produce(topic, payload, key.encode(), on_delivery=self._delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.5)
        self.producer.poll(0)
        state.produced[family] += 1

    def flush(self) -> None:
        left = self.producer.flush(60)
        if left:
            self.errors.append(f"{left} record(s) not delivered within 60 s")


def on_article(event: dict, wb: WriteBack, state: State) -> None:
    rec = event["record"]
    wb.send(
        "sentiment_update",
        rec["article_id"],
        {
            "target": "news_article",
            "key": rec["article_id"],
            "sentiment_score": sentiment(rec.get("title") or "", rec.get("body")),
            "model": SENTIMENT_MODEL,
            "model_version": SENTIMENT_MODEL_VERSION,
            "inputs": [event["event_id"]],
            # The event's commit time, not the clock: the same event gives the same update.
            "computed_at": event["committed_at"],
        },
        state,
    )


def on_tick(event: dict, state: State) -> None:
    rec = event["record"]
    # The stored tick's price is its close (a tick has one price); a bar record would carry close.
    close = rec.get("close", rec.get("price"))
    lin = event["lineage"]
    state.ticks[rec["symbol"]].append(
        Tick(
            ts=rec["ts"],
            close=float(close),
            event_id=event["event_id"],
            order=(parse_ts(rec["ts"]), lin["partition"], lin["offset"]),
        )
    )


def emit_regimes(wb: WriteBack, state: State) -> None:
    for symbol in sorted(state.ticks):
        ticks = sorted(state.ticks[symbol], key=lambda t: t.order)
        if len(ticks) < WINDOW:
            state.skipped[symbol] = len(ticks)
            continue
        window = ticks[-WINDOW:]
        total = 0.0
        for t in window:  # left to right, as the test sums (not math.fsum)
            total += t.close
        sma = total / WINDOW
        last = window[-1]
        inputs = [t.event_id for t in window]
        key = {"entity": symbol, "name": "sma_20", "ts": last.ts, "model_version": REGIME_MODEL_VERSION}
        wb.send(
            "feature",
            json.dumps(key, separators=(",", ":")),
            {**key, "value": sma, "model": REGIME_MODEL, "inputs": inputs},
            state,
        )
        up = last.close > sma
        insight_id = f"regime:{symbol}:{last.ts}"
        wb.send(
            "insight",
            insight_id,
            {
                "insight_id": insight_id,
                "symbol": symbol,
                "kind": "trend",
                "title": f"{symbol} {'uptrend' if up else 'downtrend'}",
                "body": f"last close {last.close} vs {WINDOW}-tick average {sma}",
                "confidence": regime_confidence(last.close, sma),
                "generated_at": last.ts,
                "model": REGIME_MODEL,
                "model_version": REGIME_MODEL_VERSION,
                "inputs": inputs,
            },
            state,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", default="localhost:9092", help="Kafka bootstrap servers")
    ap.add_argument("--topic-prefix", default="", help="the worker's kafka.topic_prefix")
    ap.add_argument("--group", default="esurio-ref-model", help="consumer group id")
    ap.add_argument("--suffix", default=".enriched", help="the worker's enrichment.topic_suffix")
    ap.add_argument(
        "--idle-exit",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="exit once every input partition is caught up and nothing arrived for this long",
    )
    ap.add_argument(
        "--partitions", type=int, default=1, help="partitions of write-back topics it creates"
    )
    args = ap.parse_args()

    inputs = {
        args.topic_prefix + "news_article" + args.suffix: "news_article",
        args.topic_prefix + "market_data" + args.suffix: "market_data",
    }
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            # Offsets are committed after the results are flushed: at least once, and the worker
            # drops identical records, so a crash costs repeats, never a lost result.
            "enable.auto.commit": False,
            # Only events of committed transactions, if the worker publishes transactionally.
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    assigned: set[tuple[str, int]] = set()
    at_eof: set[tuple[str, int]] = set()

    def on_assign(c, parts):
        for p in parts:
            assigned.add((p.topic, p.partition))

    def on_revoke(c, parts):
        for p in parts:
            assigned.discard((p.topic, p.partition))
            at_eof.discard((p.topic, p.partition))

    consumer.subscribe(list(inputs), on_assign=on_assign, on_revoke=on_revoke)
    wb = WriteBack(args.brokers, args.topic_prefix, args.partitions)
    state = State()
    started = last = time.monotonic()
    warned: set[str] = set()
    try:
        while True:
            msg = consumer.poll(0.2)
            now = time.monotonic()
            if msg is None:
                caught_up = assigned and assigned <= at_eof
                # No input topic at all: give the group as long as --idle-exit (at least 10 s).
                never = not assigned and now - started >= max(10.0, args.idle_exit)
                if (caught_up and now - last >= args.idle_exit) or never:
                    break
                continue
            if msg.error():
                code = msg.error().code()
                if code == KafkaError._PARTITION_EOF:
                    at_eof.add((msg.topic(), msg.partition()))
                elif code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    if msg.topic() not in warned:
                        warned.add(msg.topic())
                        print(f"model: no topic {msg.topic()} (yet); skipping it", file=sys.stderr)
                else:
                    raise KafkaException(msg.error())
                continue
            last = now
            at_eof.discard((msg.topic(), msg.partition()))
            family = inputs[msg.topic()]
            event = json.loads(msg.value())
            if event["event_id"] in state.seen:
                state.repeats += 1  # the same committed row announced again: already handled
                continue
            state.seen.add(event["event_id"])
            state.events[family] += 1
            if family == "news_article":
                on_article(event, wb, state)
            else:
                on_tick(event, state)
        emit_regimes(wb, state)
        wb.flush()
        if wb.errors:
            print("model: delivery failed: " + "; ".join(wb.errors[:5]), file=sys.stderr)
            return 1
        if state.events:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    print(
        json.dumps(
            {
                "events": dict(state.events),
                "repeats": state.repeats,
                "produced": dict(state.produced),
                "symbols_below_window": state.skipped,
            },
            sort_keys=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
