"""From disk churn to bytes on the WAN: compression, framing, encryption, transport.

The shipper compresses each record's payload with zstd (frames.data_record),
packs records into v1 batches (<= 1 MiB) and encrypts each batch with
AES-256-GCM; batches go over HTTPS. Compression must come before encryption
(ciphertext does not compress), so the measured ratio applies to payloads
only, and every overhead below is added after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.analyzer.series import Series

BATCH_BYTES = 1 << 20
BATCH_HEADER = 20  # shared.frames header
RECORD_FIXED = 1 + 32 + 4  # volume_len, fixed fields, crc (plus the volume id)
GCM_OVERHEAD = 12 + 16  # nonce + tag per encrypted batch
TLS_PER_RECORD = 29  # TLS 1.2 AES-GCM: 5 header + 8 explicit nonce + 16 tag per 16 KiB record
TLS_RECORD = 16384
TCP_MSS, TCPIP_HEADERS = 1448, 52  # IPv4 + TCP with timestamps


@dataclass(frozen=True)
class WireModel:
    compress_ratio: float = 1.0  # compressed / raw payload size; 1.0 = no compression
    compression: bool = True
    encryption: bool = True
    tls: bool = True
    tcpip: bool = True
    volume_id_bytes: int = 5

    def stages(self) -> list[tuple[str, "WireModel"]]:
        """Cumulative variants for the 'what compression and encryption change' table."""
        none = WireModel(self.compress_ratio, False, False, False, False, self.volume_id_bytes)
        return [
            ("raw payload + framing", none),
            ("+ zstd (measured ratio)", WireModel(self.compress_ratio, True, False, False, False, self.volume_id_bytes)),
            ("+ AES-GCM batch encryption", WireModel(self.compress_ratio, True, True, False, False, self.volume_id_bytes)),
            ("+ TLS records", WireModel(self.compress_ratio, True, True, True, False, self.volume_id_bytes)),
            ("+ TCP/IP headers (on the wire)", WireModel(self.compress_ratio, True, True, True, True, self.volume_id_bytes)),
        ]

    def stored(self, s: Series) -> np.ndarray:
        """Bytes per second as batches at rest (journal segments): payload, framing, encryption."""
        payload = s.write_bytes * (self.compress_ratio if self.compression else 1.0)
        framed = payload + s.iops * (RECORD_FIXED + self.volume_id_bytes)
        batches = np.ceil(framed / BATCH_BYTES)
        per_batch = BATCH_HEADER + (GCM_OVERHEAD if self.encryption else 0)
        return framed + batches * per_batch

    def wire(self, s: Series) -> np.ndarray:
        """Bytes per second on the WAN link."""
        out = self.stored(s)
        if self.tls:
            out = out + np.ceil(out / TLS_RECORD) * TLS_PER_RECORD
        if self.tcpip:
            out = out * (1 + TCPIP_HEADERS / TCP_MSS)
        return out


def clamp_ratio(r: float | None, default: float) -> tuple[float, bool]:
    """The measured ratio if there is one (never above 1: the shipper sends raw when zstd does not help)."""
    if r is None or math.isnan(r):
        return default, False
    return min(r, 1.0), True
