"""The model zoo: registry of named entries (``registry``) and the packed weight format (``packing``)."""

from mdsnn_zoo.zoo.registry import ENTRIES, ZooEntry, ZooWeights, create_model, get_weights, list_models

__all__ = ["ENTRIES", "ZooEntry", "ZooWeights", "create_model", "get_weights", "list_models"]
