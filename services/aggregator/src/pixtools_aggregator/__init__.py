"""PixTools aggregator: records step results, decides fan-in, emits terminal job events and delivers webhooks."""
