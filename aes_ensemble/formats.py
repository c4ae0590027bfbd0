"""The essays-file formats by name. A module of its own, without polars, so that the command
line names them in its help without loading the readers (``aes_ensemble.data``)."""

FORMATS = ("auto", "aes2", "asap", "ellipse", "generic")
