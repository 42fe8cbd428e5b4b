"""The gateway's domain work: tenants and keys, job submission, and the read models."""
