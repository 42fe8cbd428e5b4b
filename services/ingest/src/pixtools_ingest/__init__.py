"""The ingest service: fetches URL sources and runs the CPU operations of a pipeline."""
