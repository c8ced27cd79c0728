"""Vetting hits: sampler, job queue, judges, verdicts, FP-rate estimation, tuning.

Empty until the audit pipeline lands (issue 4); the package exists now so the import
layout and its dependency rule (``audit`` never imports ``proxy``) hold from day one.
"""
