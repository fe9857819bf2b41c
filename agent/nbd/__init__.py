"""NBD (network block device) server and client used by the data tap."""
