"""The ``aes-ensemble`` command: a thin skin over the library (parse, call, print)."""
