"""The pure synchronisation core: scheduling on an injected clock, no LiveKit I/O."""
