"""PixTools plumbing: settings, broker, blob storage, telemetry and logging. No domain logic lives here."""
