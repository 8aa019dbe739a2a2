"""``stackc report``: one self-contained HTML page (inline CSS and images, no script, no fetch) for a
bundle (``bundle.py``) or a batch output folder (``batch.py``)."""
