"""The soak harness's parts (bench/soak.py runs them; docs/soak.md describes the whole).

- ``stack``: its own Kafka, MinIO and toxiproxy, with every client link through a proxy
- ``writer``: random writes through the agent's tap, a reference model, checkpoints
- ``faults``: the fault kinds and their schedule
- ``verify``: recovering every checkpoint and counting lost, duplicated and inexact points
"""
