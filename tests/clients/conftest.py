"""The samples are what pytest-monitor measures and what the generated client runs, not
part of our suite."""

collect_ignore = ["monitor_sample", "generated_sample"]
