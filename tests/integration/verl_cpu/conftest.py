# The modules here are loaded by verl's processes (VERL_USE_EXTERNAL_MODULES), not by
# pytest: importing them patches verl, so doctest collection must not import them.
collect_ignore_glob = ["*.py"]
