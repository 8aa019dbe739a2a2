"""The build use case: prepare the source, convert every variant, judge it, write the bundle's contents;
and the use cases around it (``stackc prepare``, ``stackc check``, host measurements)."""
