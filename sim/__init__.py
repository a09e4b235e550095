"""The bit-accurate software simulator of the KCNN fabric and host ops (numpy only)."""
