"""`passk demo`: a quick look at the numerics core (filled in below)."""
