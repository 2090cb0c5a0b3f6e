"""LLM serving on GPUs, simulated on the trusted side: requests and workloads, a GPU step-time model, and an
iteration-level engine (continuous batching, chunked prefill, paged KV cache, preemption by recompute)."""
