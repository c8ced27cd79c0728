"""Which metric names a PromQL expression (or a Grafana variable query) reads."""

from __future__ import annotations

import re

PROMQL_WORDS = frozenset(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    limit_ratio
    and or unless bool on ignoring group_left group_right by without offset atan2 start end
    inf nan
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month
    day_of_week day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count
    histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
    holt_winters double_exponential_smoothing hour idelta increase irate label_join
    label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort
    sort_desc sort_by_label sort_by_label_desc sqrt time timestamp vector year
    avg_over_time min_over_time max_over_time sum_over_time count_over_time
    quantile_over_time stddev_over_time stdvar_over_time last_over_time present_over_time
    mad_over_time acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad pi
    label_values label_names metrics query_result
    """.split()
)
"""PromQL functions, aggregations and keywords, and Grafana's variable-query functions."""

STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLES = re.compile(r"\$(?:\{[^}]*\}|\w+)")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
RANGES = re.compile(r"\[[^\[\]]*\]")
_IDENTIFIERS = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: what is left once string literals, Grafana
    variables, label matchers, groupings and range selectors are gone, minus the PromQL
    words. Durations and numbers (``5m``, ``1e3``) never start an identifier."""
    for pattern in (STRINGS, _GRAFANA_VARIABLES, _MATCHERS, _GROUPINGS, RANGES):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIERS.findall(expr) if name.lower() not in PROMQL_WORDS}


_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?:(?P<selector>.*),)?\s*\w+\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<expr>.*)\)\s*$", re.S)


def variable_expr(query: str) -> str:
    """The PromQL inside a Grafana variable query: ``label_values(<selector>, <label>)`` ->
    the selector (the label is no metric), ``query_result(<expr>)`` -> the expression."""
    if match := _LABEL_VALUES.match(query):
        return match["selector"] or ""
    if match := _QUERY_RESULT.match(query):
        return match["expr"]
    if re.match(r"^\s*(?:label_names|metrics)\s*\(", query):
        return ""
    return query


def unknown_names(exprs: dict[str, str], known: set[str]) -> dict[str, set[str]]:
    """Per expression (by where it is), the metric names it reads that are not ``known``."""
    found = {where: metric_names(expr) - known for where, expr in exprs.items()}
    return {where: names for where, names in found.items() if names}
