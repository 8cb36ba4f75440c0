"""`make bench`: throughput, memory and request figures of the metrics path on the simulator."""
