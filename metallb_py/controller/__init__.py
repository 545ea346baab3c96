"""The controller: per-Service decisions and `plan` (pure), and later the process (glue)."""
