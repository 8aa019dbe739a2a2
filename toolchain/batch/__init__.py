"""``stackc batch``: a model zoo in one command (job file, task pool or Ray, content-addressed cache, index)."""
