"""Kafka helpers on confluent-kafka.

Every client made here (producer, admin, consumer) connects with the
DIALBACK_KAFKA_* security settings (shared.bus.security): TLS, SASL.

The producer is idempotent with ``acks=all``: a record acknowledged by
:meth:`Producer.send_sync` is in the in-sync replicas and will not be
duplicated by the client's own retries. Topic auto-creation is off on the
broker; topics are created here, explicitly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer as _Producer
from confluent_kafka.admin import AdminClient, NewTopic

from shared.bus.security import kafka_security
from shared.errors import DialbackError


class BusError(DialbackError):
    pass


class BusUnavailable(BusError):
    """Kafka could not be reached or did not acknowledge in time; retry later."""


def client_config(bootstrap: str) -> dict:
    """What every confluent-kafka client gets: the brokers and the DIALBACK_KAFKA_* security (shared.bus.security)."""
    return {"bootstrap.servers": bootstrap, **kafka_security().librdkafka()}


def producer_config(bootstrap: str, **extra) -> dict:
    conf = {
        **client_config(bootstrap),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "none",
        "message.max.bytes": 2 * 1024 * 1024,
        "message.timeout.ms": 15000,
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return conf


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


class Producer:
    """Thin wrapper: ``send_sync`` returns only after Kafka acknowledged."""

    def __init__(self, bootstrap: str, **extra) -> None:
        self._p = _Producer(producer_config(bootstrap, **extra))
        self._lock = threading.Lock()

    def send_many_sync(self, topic: str, messages: Iterable[tuple[bytes | None, bytes, list | None]],
                       timeout: float = 20.0) -> list[Delivered]:
        """Produce messages in order and wait for every acknowledgement.

        Raises :class:`BusUnavailable` if any message is not acknowledged.
        """
        results: list[Delivered | KafkaError | None] = []
        done = threading.Event()
        pending = [0]

        def make_cb(i: int):
            def cb(err, msg):
                results[i] = err if err is not None else Delivered(msg.topic(), msg.partition(), msg.offset())
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()
            return cb

        with self._lock:
            for i, (key, value, headers) in enumerate(messages):
                results.append(None)
                pending[0] += 1
                while True:
                    try:
                        self._p.produce(topic, value=value, key=key, headers=headers, on_delivery=make_cb(i))
                        break
                    except BufferError:
                        self._p.poll(0.05)
                    except KafkaException as err:
                        raise BusUnavailable(f"cannot produce to {topic}: {err}") from err
        if pending[0] == 0:
            done.set()
        import time as _t

        deadline = _t.monotonic() + timeout
        while not done.is_set():
            if _t.monotonic() > deadline:
                raise BusUnavailable(f"Kafka did not acknowledge {topic} within {timeout:.0f}s")
            self._p.poll(0.05)
        errors = [r for r in results if not isinstance(r, Delivered)]
        if errors:
            raise BusUnavailable(f"Kafka refused a message for {topic}: {errors[0]}")
        return results  # type: ignore[return-value]

    def send_sync(self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None,
                  timeout: float = 20.0) -> Delivered:
        return self.send_many_sync(topic, [(key, value, headers)], timeout)[0]

    def flush(self, timeout: float = 10.0) -> int:
        return self._p.flush(timeout)


def admin(bootstrap: str, errors: list | None = None) -> AdminClient:
    """An admin client; ``errors`` collects what librdkafka reports in the background (auth, TLS)."""
    conf = {**client_config(bootstrap), "socket.timeout.ms": 10000}
    if errors is not None:
        conf["error_cb"] = errors.append
    return AdminClient(conf)


def connection_hint(errors: list) -> str:
    """What the client's background errors say about a failed connection, for the user's message."""
    for err in reversed(errors):
        if err.code() == KafkaError._AUTHENTICATION:
            return (f"; authentication failed ({err.str()}): check DIALBACK_KAFKA_SASL_USERNAME, "
                    "DIALBACK_KAFKA_SASL_PASSWORD(_FILE) and DIALBACK_KAFKA_SASL_MECHANISM")
        if err.code() == KafkaError._SSL:
            return (f"; TLS failed ({err.str()}): check DIALBACK_KAFKA_SSL_CAFILE and that the broker's "
                    "certificate names the host in DIALBACK_KAFKA_BOOTSTRAP")
    if errors:
        return (f"; last client error: {errors[-1].str()} (check DIALBACK_KAFKA_SECURITY_PROTOCOL matches "
                "the broker's listener)")
    return ""


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int = 1, replication: int = 1,
                  config: dict | None = None, timeout: float = 30.0) -> None:
    """Create topics that do not exist yet (idempotent)."""
    errors: list = []
    adm = admin(bootstrap, errors)
    try:
        existing = set(adm.list_topics(timeout=timeout).topics)
    except KafkaException as err:
        adm.poll(0)  # deliver the background errors (the why) to errors
        raise BusUnavailable(f"cannot reach Kafka at {bootstrap}: {err}{connection_hint(errors)}") from err
    wanted = [n for n in names if n not in existing]
    if not wanted:
        return
    futures = adm.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication, config=config or {}) for n in wanted],
        operation_timeout=timeout,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except KafkaException as err:
            if err.args and err.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BusError(f"cannot create topic {name}: {err}") from err


def consumer(bootstrap: str, group: str, **extra) -> Consumer:
    conf = {
        **client_config(bootstrap),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    conf.update(extra)
    return Consumer(conf)
