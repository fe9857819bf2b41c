"""Cloud providers for burst: the abstract contract, an in-memory one for unit tests, OpenStack."""
