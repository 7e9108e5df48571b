"""The parts of ``faillite bench agent`` (the command itself is ``faillite.bench.agent_overhead``):
request bodies, the closed-loop throughput modes, the one-client latency modes, the servers it
compares with (a gateway on a static route table, a real Triton) and the report."""
