"""Prometheus metrics of one agent, computed at scrape time from live state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from agent.runtime import Agent

ALARM_KINDS = ("spool_overflow", "shipping", "ingest_gap", "ingest_resync", "sync_failed")


class AgentCollector:
    def __init__(self, agent: "Agent"):
        self.agent = agent

    def collect(self):
        rpo = GaugeMetricFamily("dialback_agent_rpo_seconds",
                                "now minus the time of the oldest write not acknowledged by ingest", labels=["group"])
        depth = GaugeMetricFamily("dialback_agent_spool_records", "records not yet acknowledged", labels=["group"])
        sbytes = GaugeMetricFamily("dialback_agent_spool_bytes", "spool bytes not yet acknowledged", labels=["group"])
        disk = GaugeMetricFamily("dialback_agent_spool_disk_bytes", "spool segment bytes on disk", labels=["group"])
        shipped = CounterMetricFamily("dialback_agent_shipped_bytes", "batch bytes acknowledged by ingest",
                                      labels=["group"])
        last = GaugeMetricFamily("dialback_agent_last_sequence", "last sequence assigned", labels=["group"])
        acked = GaugeMetricFamily("dialback_agent_acked_through", "last sequence ingest acknowledged",
                                  labels=["group"])
        alarm = GaugeMetricFamily("dialback_agent_alarm", "1 while the alarm is raised", labels=["group", "alarm"])
        synced = GaugeMetricFamily("dialback_agent_initial_sync_complete", "1 once the initial sync is done",
                                   labels=["group"])
        for name, g in self.agent.groups.items():
            records, pending = g.spool.pending()
            rpo.add_metric([name], g.rpo_seconds())
            depth.add_metric([name], records)
            sbytes.add_metric([name], pending)
            disk.add_metric([name], g.spool.disk_bytes())
            shipper = self.agent.shippers.get(name)
            shipped.add_metric([name], shipper.shipped_bytes if shipper else 0)
            last.add_metric([name], g.spool.last_seq)
            acked.add_metric([name], g.state.acked_through)
            synced.add_metric([name], 1 if g.state.initial_sync_complete else 0)
            for kind in sorted(set(ALARM_KINDS) | set(g.alarms)):
                alarm.add_metric([name, kind], 1 if kind in g.alarms else 0)
        yield from (rpo, depth, sbytes, disk, shipped, last, acked, alarm, synced)


def make_registry(agent: "Agent") -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return registry
