"""The hps service: REST API, use cases and the store, over one SQL database."""
