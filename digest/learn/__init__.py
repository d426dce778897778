"""Learning from readers: "more / less like this", seed papers, and a model per reader.

The stages: `text` (the shared tf-idf representation of papers, fitted on the store's
papers and refitted on a schedule), `taste` (a reader's linear model from their feedback
rows, or similarity to what they liked while they have few), `rank` (block scoring of
many readers at once: re-orders keyword matches and fills "Suggested for you"),
`models` (building, storing and rebuilding models) and `seeds` (`like:ID` entries).
"""

from digest.learn.models import rebuild_models, refresh_reader

__all__ = ["rebuild_models", "refresh_reader"]
