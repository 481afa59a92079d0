"""The Python API: :mod:`~landscape.api.inputs` resolves inputs once; one module per capability."""
