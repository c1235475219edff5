"""The sample file is what pytest-monitor measures, not part of our suite."""

collect_ignore = ["monitor_sample"]
