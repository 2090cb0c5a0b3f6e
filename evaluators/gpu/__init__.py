"""Real-device measurements: verifiers that time the work on a GPU, and simulators calibrated from it.

PyTorch is an optional extra (`pip install -e '.[gpu]'`) and is imported only when a backend is opened, so
the rest of adrs imports and runs without it. Without CUDA the same code runs on the CPU at small shapes.

Modules: timing (warm-up, adaptive repeats to a target spread), backend (torch, device, timers, cache
flush), device_info (name, driver, clocks, temperature), drift (the reference GEMM and the drift flag),
bench (a measurement record tying these together), transformer (a Llama-style layer stack with a KV cache),
serving_profile (prefill/decode step grid -> the serving simulator's profile file), moe_bench (an EPLB
placement's expert GEMMs timed per simulated GPU), calibrate (the command a lent GPU runs).
"""
