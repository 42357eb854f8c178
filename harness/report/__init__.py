"""Tables and figures built from run records only, never from live objects."""
