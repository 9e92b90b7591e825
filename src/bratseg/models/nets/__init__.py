"""The seed networks (imported lazily by the registry)."""
