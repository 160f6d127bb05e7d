"""Stream jobs: PyFlink jobs (QoS windows, completion scores) and the Faust app (River models)."""
