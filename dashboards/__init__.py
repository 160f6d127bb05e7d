"""Dashboards: grafanalib definitions, Grafana provisioning, local HTML report."""
