"""Apache Kafka (KRaft, single node) on 127.0.0.1, from its jars on Maven Central.

Provisioning assembles the broker class path once with
``mvn dependency:copy-dependencies`` into the cache; ``KAFKA_HOME`` (an
unpacked official tarball) is used instead when set. Topic auto-creation is
off: Dialback creates its topics itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from deploy.local.certs import LoopbackTls
from deploy.local.process import Managed, StartError, port_open
from deploy.local.tools import need

KAFKA_VERSION = "3.9.1"

_LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


def classpath_dir(cache: Path) -> Path:
    home = os.environ.get("KAFKA_HOME")
    if home and (Path(home) / "libs").is_dir():
        return Path(home) / "libs"
    return cache / f"kafka-{KAFKA_VERSION}" / "libs"


def provision(cache: Path, echo=print) -> Path:
    """Make sure the broker's jars are in the cache; returns the libs dir. Idempotent."""
    libs = classpath_dir(cache)
    if (libs / ".complete").exists() or os.environ.get("KAFKA_HOME"):
        return libs
    need("java")
    mvn = need("mvn")
    echo(f"assembling Kafka {KAFKA_VERSION} from Maven Central into {libs} (once)")
    tmp = Path(tempfile.mkdtemp(prefix="dialback-kafka-"))
    try:
        pom = resources.files("deploy.local").joinpath("maven-kafka.pom.xml").read_text()
        (tmp / "pom.xml").write_text(pom.replace("${kafka.version}", KAFKA_VERSION))
        out = libs.with_name("libs.partial")
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(
            [mvn, "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={out}"],
            cwd=tmp, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise StartError(f"Maven could not fetch Kafka's jars (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-2000:]}")
        shutil.rmtree(libs, ignore_errors=True)
        out.rename(libs)
        (libs / ".complete").write_text(KAFKA_VERSION)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


@dataclass(frozen=True)
class SaslSsl:
    """The client listener as SASL_SSL: TLS with ``tls``'s keystore, SCRAM-SHA-512 users.

    ``users``: name -> password, created when the storage is formatted (``--add-scram``); the
    first one is the broker's own (inter-broker) login. The controller listener stays
    PLAINTEXT on loopback (KRaft quorum traffic only, no client data).
    """
    tls: LoopbackTls
    users: dict[str, str]
    mechanism: str = "SCRAM-SHA-512"

    def client_config(self, user: str | None = None) -> dict:
        """librdkafka settings of a client logging in as ``user`` (default: the broker's own user)."""
        user = user or next(iter(self.users))
        return {"security.protocol": "sasl_ssl", "sasl.mechanism": self.mechanism, "sasl.username": user,
                "sasl.password": self.users[user], "ssl.ca.location": str(self.tls.ca_pem)}

    def properties(self, port: int, advertised_port: int) -> list[str]:
        broker_user, broker_password = next(iter(self.users.items()))
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{broker_user}" '
                f'password="{broker_password}";')
        return [
            f"advertised.listeners=SASL_SSL://127.0.0.1:{advertised_port}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.enabled.mechanisms={self.mechanism}",
            f"sasl.mechanism.inter.broker.protocol={self.mechanism}",
            f"listener.name.sasl_ssl.{self.mechanism.lower()}.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.tls.keystore}",
            f"ssl.keystore.password={self.tls.keystore_password}",
            f"ssl.key.password={self.tls.keystore_password}",
            # the broker is a client of itself (inter-broker) and checks its keystore against this
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.tls.ca_pem}",
            "ssl.client.auth=none",
        ]

    def format_args(self) -> list[str]:
        return [a for name, pw in self.users.items()
                for a in ("--add-scram", f"{self.mechanism}=[name={name},password={pw}]")]


def server(cache: Path, data_dir: Path, port: int, controller_port: int, heap: str = "512m",
           memory_limit: int | None = None, advertised_port: int | None = None,
           sasl_ssl: SaslSsl | None = None) -> Managed:
    """A Managed KRaft broker+controller; call ``.start()``. Formats storage once.

    ``sasl_ssl``: serve clients over SASL_SSL only (no PLAINTEXT client listener).

    ``advertised_port``: the port clients are told to connect to (default ``port``); the soak
    harness points it at a TCP fault proxy in front of the broker, so every client connection
    after the bootstrap goes through the proxy.

    ``memory_limit`` caps the broker's heap, native memory and page cache together (deploy.local.memcap).
    """
    libs = classpath_dir(cache)
    java = need("java")
    data_dir.mkdir(parents=True, exist_ok=True)
    props = data_dir / "server.properties"
    client = "SASL_SSL" if sasl_ssl else "PLAINTEXT"
    listener = (sasl_ssl.properties(port, advertised_port or port) if sasl_ssl else [
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{advertised_port or port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    ])
    props.write_text("\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners={client}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "controller.listener.names=CONTROLLER",
        *listener,
        f"log.dirs={data_dir / 'logs'}",
        "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=4",
        "group.initial.rebalance.delay.ms=0",
        "num.partitions=1",
        "message.max.bytes=2097152",
        "replica.fetch.max.bytes=2097152",
        # A deleted topic's files go at once, not a minute later in the middle of whatever runs
        # next (tests and benchmarks delete their tenants' topics).
        "file.delete.delay.ms=1000",
        "",
    ]))
    (data_dir / "log4j.properties").write_text(_LOG4J)
    cp = f"{libs}/*"
    if not (data_dir / "logs" / "meta.properties").exists():
        fmt = subprocess.run(
            [java, "-cp", cp, f"-Dlog4j.configuration=file:{data_dir / 'log4j.properties'}",
             "kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22], "-c", str(props),
             *(sasl_ssl.format_args() if sasl_ssl else [])],
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise StartError(f"formatting Kafka storage in {data_dir} failed:\n{fmt.stdout}{fmt.stderr}")
    argv = [java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{data_dir / 'log4j.properties'}", "-cp", cp, "kafka.Kafka", str(props)]
    security = sasl_ssl.client_config() if sasl_ssl else {}
    return Managed("kafka", argv, data_dir, ready=lambda: _ready(port, security), memory_limit=memory_limit)


def _ready(port: int, security: dict) -> bool:
    if not port_open(port):
        return False
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", **security}).list_topics(timeout=3)
    except KafkaException:
        return False
    return bool(md.brokers)
