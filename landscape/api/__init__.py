"""The Python API, one module per capability; ``landscape/__init__.py`` lists the public names.

:mod:`~landscape.api.inputs` resolves what a notebook passes (data, loss, device, directions, grid)
once for every capability: :mod:`~landscape.api.surface`, :mod:`~landscape.api.hessian`,
:mod:`~landscape.api.trajectory`, :mod:`~landscape.api.plot` and :mod:`~landscape.api.checkpoint`.
"""
