"""What both suites share: ``processes`` (worker subprocesses), ``cpus``
(placement and background load), ``environment`` (the record of what ran
where), ``report`` (statistics, ratios, tables, JSON) and ``profiler``."""
