"""forgetbench: measure catastrophic forgetting when training on many on-disk shard files."""

__version__ = "0.1.0"
