"""The HTTP collector: the one way in for platform clients.

Every event is validated and keyed, durably written to Kafka, and only then acknowledged; every
bad event is rejected with a reason and kept in the dead-letter topic. The app is built by
``streams.collector.app.create_app``; keys are made by ``streams.collector.auth``.
"""
