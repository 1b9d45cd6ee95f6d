"""The relay: publishes each service's stored events to Kafka, in store order."""
