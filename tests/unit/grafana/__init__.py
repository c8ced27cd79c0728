"""The Grafana dashboard (deploy/grafana/dashboards/vetcache.json) and its provisioning
files: its layout and template variables (``test_layout``), every metric name its PromQL
reads exists (``test_metric_names``: in the series ``proxy.metrics.Metrics`` registers, or as
a recording rule in deploy/prometheus/rules/), the provisioning (``test_provisioning``), and,
with promtool installed, every query returns data on synthetic series of two replicas,
aggregated across them (``test_queries_run``)."""
