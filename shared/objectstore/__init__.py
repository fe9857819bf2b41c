"""The narrow storage interface every service uses (the role restic's Backend plays).

Adapters: :mod:`shared.objectstore.memory` (unit tests) and
:mod:`shared.objectstore.minio` (MinIO / S3). Both pass the contract suite in
``tests/contract/test_objectstore_contract.py``.
"""

from shared.objectstore.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    PermanentStoreError,
    TransientStoreError,
)

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "PermanentStoreError",
    "TransientStoreError",
]
