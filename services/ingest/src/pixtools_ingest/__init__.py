"""The ingest service: the CPU operations of a pipeline."""
