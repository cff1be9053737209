"""Training, evaluation and export of phototagger's landmark models (``python -m training``).

Importable as a library: :func:`training.engine.train`, :func:`training.evaluate.evaluate`,
:func:`training.export.export_model` and :func:`training.compare.compare`. The model files it
writes need only ``phototagger`` (and torch) to load.
"""
