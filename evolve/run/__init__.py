"""One run's orchestration: the asyncio loop, scoring programs in worker processes, final held-out scoring."""
