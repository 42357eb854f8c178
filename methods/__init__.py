"""Methods register themselves here by importing `METHODS` from methods.base (one file each)."""
