"""The index: photos, predictions, models, runs and writes in one SQL database."""

from phototagger.index.store import BestGuess, KnownPhoto, Library, canonical, path_key

__all__ = ["BestGuess", "KnownPhoto", "Library", "canonical", "path_key"]
