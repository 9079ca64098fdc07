"""Where bytes go: verified downloads (:mod:`~ecephys.cache.download`), per-file locks,
progress bars and completeness checks (:mod:`~ecephys.cache.verify`)."""
